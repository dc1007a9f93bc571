/** What a volume's own directory in its pool holds: its data, its snapshots, its history's refs and the mark of a restore under way. */
import { join } from 'node:path';
import type { Pool } from './pool.js';

/** The paths of one volume's directory (the pool says where the directory and its data are; the rest is below it). */
export interface VolumeDirs {
  pool: Pool;
  /** The volume's own directory. */
  root: string;
  /** What Docker bind-mounts: a direct child of `root` (a restore swaps it by renames beside it). */
  data: string;
  /** `ID` trees, `ID.json` records and `ID.manifest.json` manifests of its snapshots. */
  snaps: string;
  /** The history's branches and worktrees. */
  refs: string;
  /** Written while a restore changes the data (the journal of a restore in place, or the mark of a swap), so that start-up finishes it. */
  restoreMarker: string;
}

/** The restore journal or swap mark in a volume's directory (see VolumeDirs.restoreMarker). */
export const RESTORE_MARKER = 'restore.json';

export function volumeDirs(pool: Pool, volume: string): VolumeDirs {
  const root = pool.volumeRoot(volume);
  return { pool, root, snaps: join(root, 'snapshots'), data: pool.mountpoint(volume), refs: join(root, 'refs.json'), restoreMarker: join(root, RESTORE_MARKER) };
}
