/** What a volume's own directory in its pool holds: its data, its snapshots, its history's refs and the mark of a restore under way. */
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
  // (a volume root is normalised, see Pool.volumeRoot: concatenation is join's result without its normalising,
  // which start-up's recovery and every usage pass did 3 times for each of 10,000 volumes: 25 MB of garbage)
  return { pool, root, snaps: `${root}/snapshots`, data: pool.mountpoint(volume), refs: `${root}/refs.json`, restoreMarker: `${root}/${RESTORE_MARKER}` };
}

