/** The tree worker's jobs (build, materialise, relocate), their results and progress, and the roles of its threads. */
import type { Manifest } from './manifest.js';

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

export type TreeJob = BuildJob | MaterialiseJob | RelocateJob;

/**
 * What a thread of this file does (its workerData): `serve` answers tree jobs one after another for
 * ferryd's life (keeping manifests and walk helpers), `job` answers one, `walk-helper` walks for a build.
 */
export type TreeWorkerRole = 'serve' | 'job' | 'walk-helper';
