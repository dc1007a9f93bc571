/** The tree worker's jobs (build, materialise, relocate, the two steps of a restore in place), their results and progress, and the roles of its threads. */
import type { DirEntry, Manifest } from './manifest.js';

export type Reflink = 'always' | 'auto';

export interface BuildJob {
  op: 'build';
  /** The new snapshot's id (what its manifest's '' holder means). */
  id: string;
  layout: Manifest['layout'];
  /** `always` for reflink pools (fail rather than copy data), `auto` elsewhere. */
  reflink: Reflink;
  live: string;
  dest: string;
  manifestOut: string;
  /** The snapshots directory and the previous snapshot's id, if it has a manifest. */
  prev?: { snaps: string; id: string };
}
export interface BuildResult {
  files: number;
  linked: number;
  copied: number;
  copiedBytes: number;
  /** ms since the start, after each phase (for the log). */
  timings: Record<string, number>;
}

/** How far a build got, reported as it goes (a snapshot job's progress): the walk, then the copies of what changed. */
export interface TreeProgress {
  phase: 'scan' | 'copy';
  /** Entries seen (scan) or copied (copy); the total is known once the walk is done. */
  filesDone: number;
  filesTotal?: number;
  /** Bytes of regular files copied, of those to copy. */
  bytesDone: number;
  bytesTotal?: number;
}

export interface MaterialiseJob {
  op: 'materialise';
  snaps: string;
  id: string;
  dest: string;
  mode: 'copy' | 'link';
  reflink: Reflink;
}

export interface RelocateJob {
  op: 'relocate';
  snaps: string;
  id: string;
  /** The snapshots made after `id`, oldest first (only they can reference it). */
  later: string[];
}
export interface RelocateResult {
  moved: number;
  rewritten: number;
}

/** A restore in place, step 1: compare the live tree with a snapshot's manifest and copy what differs into `stage`. */
export interface RestoreStageJob {
  op: 'restore-stage';
  snaps: string;
  id: string;
  live: string;
  /** An empty directory beside `live` (the same filesystem: its entries are renamed into the live tree). */
  stage: string;
  reflink: Reflink;
}

/**
 * What applying a staged restore does to the live tree, in this order (restore-apply.ts):
 * `remove` (a directory tree where `kind` is `dir`, else a non-directory; only while the path still is of that
 * kind, so that a replay never removes what a first pass put there), `place` (rename `stage/rel` to `live/rel`
 * while `stage/rel` exists), then `dirs` (mode, owner, times of these directories, deepest first).
 */
export interface RestorePlan {
  remove: Array<[rel: string, kind: 'dir' | 'other']>;
  place: string[];
  dirs: DirEntry[];
}
export interface RestoreStats {
  /** Non-directories of the snapshot left as they are in the live tree (unchanged since the snapshot). */
  kept: number;
  /** Non-directories copied from the snapshot, and their bytes. */
  copied: number;
  copiedBytes: number;
  /** Live entries (the top-most of a subtree) removed: the snapshot lacks them, or has another type there. */
  removed: number;
  /** ms since the start, after each phase (for the log). */
  timings: Record<string, number>;
}
/** A plan and its copies staged, or why this snapshot is restored by a full copy instead. */
export type RestoreStageResult = { plan: RestorePlan; stats: RestoreStats } | { fallback: string };

/** A restore in place, step 2 (and its replay at start-up): carry out the journal's plan. */
export interface RestoreApplyJob {
  op: 'restore-apply';
  live: string;
  stage: string;
  /** The journal file (restore.json) holding the plan. */
  journal: string;
}

/** What applying a journal did this time (a replay after a crash does what the first pass had not). */
export interface AppliedCounts {
  removals: number;
  renames: number;
}

export type TreeJob = BuildJob | MaterialiseJob | RelocateJob | RestoreStageJob | RestoreApplyJob;

/**
 * What a thread of this file does (its workerData): `serve` answers tree jobs one after another for
 * ferryd's life (keeping manifests and walk helpers), `job` answers one, `walk-helper` walks for a build.
 */
export type TreeWorkerRole = 'serve' | 'job' | 'walk-helper';
