/** What ferryd records of a snapshot (its JSON file beside the tree), and what making one takes: the types the snapshot files share. */
import type { SnapshotStats } from '../pools/trees/methods.js';
import type { Snapshot } from '../wire/types.js';

export type SnapshotKind = 'snapshot' | 'commit' | 'worktree';

/** A snapshot's record: what the API shows of it (the wire contract), with the stats its method gives. */
export interface SnapshotRecord extends Omit<Snapshot, 'kind' | 'stats'> {
  kind: SnapshotKind;
  stats: SnapshotStats;
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
