/** What ferryd records of a snapshot (its JSON file beside the tree), and what making one takes: the types the snapshot files share. */
import type { SnapshotStats } from '../pools/trees/methods.js';

export type SnapshotKind = 'snapshot' | 'commit' | 'worktree';

export interface SnapshotRecord {
  id: string;
  volume: string;
  /** Which incarnation of the volume name (its creation time). */
  volumeCreatedAt: string;
  name: string;
  kind: SnapshotKind;
  createdAt: string;
  node: string;
  method: string;
  /** Who made it: a user, a schedule, the history commands, or a backup (which reads from it). */
  origin: 'manual' | 'schedule' | 'history' | 'backup';
  consistency: 'crash' | 'paused' | 'exec';
  durationMs: number;
  stats: SnapshotStats;
  /** Commits: message, parent commit, branch it was made on. Worktrees: the branch they belong to. */
  message?: string;
  parent?: string;
  branch?: string;
  /** Scheduled snapshots: the schedule slot they ran for. */
  slot?: string;
}

export interface CreateSnapshotOptions {
  name?: string;
  pause?: boolean;
  exec?: string;
  kind?: SnapshotKind;
  origin?: SnapshotRecord['origin'];
  message?: string;
  parent?: string;
  branch?: string;
  slot?: string;
  /** Told how far it got, as it goes (a snapshot job's progress). */
  onProgress?: (p: SnapshotProgress) => void;
}

/**
 * How far a snapshot got: `prepare` (--exec, --pause), `snapshot` (a filesystem snapshot: one step), or
 * `scan` then `copy` (tree methods: entries seen, then copies of what changed of a known total), then `save`.
 */
export interface SnapshotProgress {
  phase: 'prepare' | 'snapshot' | 'scan' | 'copy' | 'save';
  filesDone?: number;
  filesTotal?: number;
  bytesDone?: number;
  bytesTotal?: number;
}
