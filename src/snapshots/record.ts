/** What ferryd records of a snapshot (its JSON file beside the tree), as the snapshot service and the damage checks read it. */
import type { SnapshotStats } from './methods.js';

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
