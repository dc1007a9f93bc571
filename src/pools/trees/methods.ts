/** Snapshot methods of a pool (btrfs subvolumes, reflink or hard-link trees built by the tree worker), chosen by what the filesystem can do. */
import { Worker } from 'node:worker_threads';
import { lstat, mkdir, readdir, rm, statfs, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execProgram } from '../../util/exec.js';
import { errorMessage, isErrno } from '../../util/errors.js';
import type { Manifest } from './manifest.js';
import { WorkerChannel } from '../../util/worker-channel.js';
import { builtUrl } from '../../util/built-files.js';
import type { AppliedCounts, BuildJob, BuildResult, MaterialiseJob, RelocateResult, Reflink, RestoreApplyJob, RestoreStageJob, RestoreStageResult, TreeJob, TreeProgress, TreeWorkerRole } from './jobs.js';

export type { TreeProgress };

export type SnapshotMethodName = 'btrfs' | 'reflink' | 'hardlink';

export interface SnapshotStats {
  /** Entries other than directories. */
  files?: number;
  /** Unchanged entries shared with earlier snapshots (referenced, or hard-linked in full trees). */
  linked?: number;
  copied?: number;
  copiedBytes?: number;
  /** ms since the start after each phase of the build (walk, compare, copy, manifest). */
  timings?: Record<string, number>;
}

/** A snapshot as stored: its tree is `snaps/id`, its manifest (if any) `snaps/id.manifest.json`. */
export interface StoredSnapshot {
  snaps: string;
  id: string;
}

export interface SnapshotOptions {
  /** The new snapshot's id. */
  id: string;
  /** See manifest.ts: `delta` where only this ferryd writes the pool, `full` in shared pools. */
  layout: Manifest['layout'];
  /** The previous snapshot made by the same method, if any: what has not changed since is shared with it. */
  prev?: StoredSnapshot;
  /** Where to write the new snapshot's manifest (methods that keep one). */
  manifestOut: string;
  /** Told how far a tree build got, as it goes (methods that walk and copy). */
  onProgress?: (p: TreeProgress) => void;
}

/**
 * How a pool makes point-in-time copies of a volume's data, picked by ferryd for the pool's filesystem:
 * - `btrfs`: live data is a subvolume, a snapshot is a read-only subvolume snapshot: O(1) in time and space.
 * - `reflink` (xfs with reflink, btrfs without subvolumes): like `hardlink`, but what changed is copied
 *   with `cp -a --reflink=always`, sharing blocks copy-on-write.
 * - `hardlink` (ext4, NFS, anything): a walk of the live tree and copies of what changed since the previous
 *   snapshot; unchanged files are the previous snapshots' copies (manifest.ts). The live data never shares
 *   an inode with a snapshot (restores and clones copy).
 */
export interface SnapshotMethod {
  readonly name: SnapshotMethodName;
  /** Make the empty live data directory of a new volume. */
  createLive(path: string): Promise<void>;
  /** A point-in-time copy of `live` at `dest` (which must not exist). */
  snapshot(live: string, dest: string, opts: SnapshotOptions): Promise<SnapshotStats>;
  /** A writable copy of a snapshot at `dest`, for restores and clones. */
  writableCopy(src: StoredSnapshot, dest: string): Promise<void>;
}

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The inode number of every btrfs subvolume root. */
const BTRFS_SUBVOL_INO = 256;

/** Is `path` the root of a btrfs subvolume (a volume's live data on a btrfs pool, or a snapshot)? */
export async function isSubvolume(path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    return st.ino === BTRFS_SUBVOL_INO && st.isDirectory() && (await statfs(path)).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

function treeWorker(role: TreeWorkerRole, opts?: { unrefWhenIdle?: boolean }): WorkerChannel<TreeJob, unknown, TreeProgress> {
  return new WorkerChannel(new Worker(builtUrl('pools/trees/tree-worker.js'), { workerData: role }), 'snapshot', opts);
}

/** Run one job of tree-worker.ts in a worker thread of its own. */
export function runTreeJob(job: Extract<TreeJob, { op: 'build' }>, onProgress?: (p: TreeProgress) => void): Promise<BuildResult>;
export function runTreeJob(job: Extract<TreeJob, { op: 'relocate' }>): Promise<RelocateResult>;
export function runTreeJob(job: Extract<TreeJob, { op: 'materialise' }>): Promise<void>;
export function runTreeJob(job: Extract<TreeJob, { op: 'restore-stage' }>): Promise<RestoreStageResult>;
export function runTreeJob(job: Extract<TreeJob, { op: 'restore-apply' }>): Promise<AppliedCounts>;
export async function runTreeJob(job: TreeJob, onProgress?: (p: TreeProgress) => void): Promise<unknown> {
  const chan = treeWorker('job');
  try {
    return await chan.request(job, { onProgress });
  } finally {
    await chan.close();
  }
}

/**
 * Builds (and the walks of restores in place) run in one long-lived worker thread (and its walk helpers),
 * which keeps the last manifest of each volume in memory: a snapshot of a large volume then costs the walk
 * and the copies, not also the start of threads and the parse of the previous manifest. A job that arrives
 * while another runs gets a worker of its own. The worker keeps ferryd alive only while it works; one that
 * died is replaced by the next job.
 */
class BuildServer {
  private chan?: WorkerChannel<TreeJob, unknown, TreeProgress>;
  private busy = false;

  run(job: BuildJob, onProgress?: (p: TreeProgress) => void): Promise<BuildResult>;
  run(job: RestoreStageJob): Promise<RestoreStageResult>;
  run(job: RestoreApplyJob): Promise<AppliedCounts>;
  async run(job: BuildJob | RestoreStageJob | RestoreApplyJob, onProgress?: (p: TreeProgress) => void): Promise<unknown> {
    if (this.busy) return job.op === 'build' ? runTreeJob(job, onProgress) : job.op === 'restore-stage' ? runTreeJob(job) : runTreeJob(job);
    this.busy = true;
    try {
      if (!this.chan || this.chan.dead) this.chan = treeWorker('serve', { unrefWhenIdle: true });
      return await this.chan.request(job, { onProgress });
    } finally {
      this.busy = false;
    }
  }
}
const builds = new BuildServer();

/** The steps of a restore in place (restore-stage.ts, restore-apply.ts), in the serving worker (its walk helpers are running; no thread to start). */
export function runRestoreJob(job: RestoreStageJob): Promise<RestoreStageResult>;
export function runRestoreJob(job: RestoreApplyJob): Promise<AppliedCounts>;
export function runRestoreJob(job: RestoreStageJob | RestoreApplyJob): Promise<unknown> {
  return job.op === 'restore-stage' ? builds.run(job) : builds.run(job);
}

/** A whole tree of a snapshot at `dest`: copies (writable) or hard links (a read-only view). */
export function materialise(src: StoredSnapshot, dest: string, mode: MaterialiseJob['mode'], reflink: Reflink = 'auto'): Promise<void> {
  return runTreeJob({ op: 'materialise', snaps: src.snaps, id: src.id, dest, mode, reflink });
}

function treeMethod(name: 'reflink' | 'hardlink', reflink: Reflink): SnapshotMethod {
  return {
    name,
    createLive: async (path) => void (await mkdir(path)),
    snapshot: (live, dest, o) => builds.run({ op: 'build', id: o.id, layout: o.layout, reflink, live, dest, manifestOut: o.manifestOut, ...(o.prev ? { prev: o.prev } : {}) }, o.onProgress),
    writableCopy: (src, dest) => materialise(src, dest, 'copy', reflink),
  };
}

const reflinkMethod = treeMethod('reflink', 'always');
const hardlinkMethod = treeMethod('hardlink', 'auto');

const btrfsMethod: SnapshotMethod = {
  name: 'btrfs',
  createLive: async (path) => void (await execProgram('btrfs', ['subvolume', 'create', path])),
  snapshot: async (live, dest, o) => {
    // Volumes made before the pool was btrfs (or restored from elsewhere) are plain directories.
    if (!(await isSubvolume(live))) return reflinkMethod.snapshot(live, dest, o);
    await execProgram('btrfs', ['subvolume', 'snapshot', '-r', live, dest]);
    return {};
  },
  writableCopy: async (src, dest) => {
    const tree = join(src.snaps, src.id);
    if (!(await isSubvolume(tree))) return reflinkMethod.writableCopy(src, dest);
    await execProgram('btrfs', ['subvolume', 'snapshot', tree, dest]);
  },
};

export const METHODS: Record<SnapshotMethodName, SnapshotMethod> = { btrfs: btrfsMethod, reflink: reflinkMethod, hardlink: hardlinkMethod };

/** Pick the best method for the filesystem under `root` by trying it. */
export async function detectMethod(root: string): Promise<SnapshotMethodName> {
  if ((await statfs(root)).type === BTRFS_SUPER_MAGIC) return 'btrfs';
  const a = join(root, `.reflink-probe-${process.pid}`);
  const b = `${a}-copy`;
  try {
    await writeFile(a, 'probe');
    await execProgram('cp', ['--reflink=always', a, b]);
    return 'reflink';
  } catch {
    return 'hardlink';
  } finally {
    await unlink(a).catch(() => undefined);
    await unlink(b).catch(() => undefined);
  }
}

/**
 * Delete a tree that may hold btrfs subvolumes (read-only snapshots cannot be emptied by rm). On btrfs the
 * subvolumes go first, each in O(1) with `btrfs subvolume delete` (deepest first where they nest), then rm
 * takes what is left; elsewhere it is rm alone.
 */
export async function removeTree(path: string): Promise<void> {
  const top = await lstat(path).catch(() => undefined);
  if (!top) return;
  if (top.isDirectory() && (await statfs(path)).type === BTRFS_SUPER_MAGIC) await deleteSubvolumes(path, top.ino === BTRFS_SUBVOL_INO);
  await rm(path, { recursive: true, force: true });
}

/** Delete every subvolume at or below `dir` (only directories are looked at, never files). */
async function deleteSubvolumes(dir: string, isSubvol: boolean): Promise<void> {
  const del = async () => {
    try {
      await execProgram('btrfs', ['subvolume', 'delete', dir]);
      return true;
    } catch (err) {
      if (!(await lstat(dir).catch(() => undefined))) return true;
      return err;
    }
  };
  if (isSubvol && (await del()) === true) return; // the common case: no subvolume inside
  const entries = await readdir(dir, { withFileTypes: true }).catch((err) => (isErrno(err, 'ENOENT') ? [] : Promise.reject(err)));
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const p = join(dir, e.name);
    const st = await lstat(p).catch(() => undefined);
    if (st) await deleteSubvolumes(p, st.ino === BTRFS_SUBVOL_INO);
  }
  if (isSubvol) {
    const r = await del();
    if (r !== true) throw new Error(`cannot delete ${dir}: ${errorMessage(r)}`);
  }
}
