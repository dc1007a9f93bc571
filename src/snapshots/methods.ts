import { Worker } from 'node:worker_threads';
import { lstat, mkdir, readdir, rm, statfs, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execProgram } from '../util/exec.js';
import { errorMessage, isErrno } from '../util/errors.js';
import type { Manifest } from './manifest.js';
import type { LinkJob, LinkResult } from './link-worker.js';

export type SnapshotMethodName = 'btrfs' | 'reflink' | 'hardlink';

export interface SnapshotStats {
  files?: number;
  linked?: number;
  copied?: number;
  copiedBytes?: number;
}

/**
 * How a pool makes point-in-time copies of a volume's data, picked by ferryd for the pool's filesystem:
 * - `btrfs`: live data is a subvolume, a snapshot is a read-only subvolume snapshot: O(1) in time and space.
 * - `reflink` (xfs with reflink, btrfs without subvolumes): like `hardlink`, but what changed is copied
 *   with `cp -a --reflink=always`, sharing blocks copy-on-write: ~O(1) in space, a walk plus the changes in time.
 * - `hardlink` (ext4, NFS, anything): files unchanged since the previous snapshot are hard-linked from it,
 *   the rest copied: proportional to what changed. Snapshots share immutable files with each other; the
 *   live data never shares an inode with a snapshot (restores and clones copy).
 */
export interface SnapshotMethod {
  readonly name: SnapshotMethodName;
  /** Make the empty live data directory of a new volume. */
  createLive(path: string): Promise<void>;
  /** A point-in-time copy of `live` at `dest` (which must not exist). */
  snapshot(live: string, dest: string, prev?: { tree: string; manifest?: Manifest }, manifestOut?: string): Promise<SnapshotStats>;
  /** A writable copy of a snapshot tree at `dest`, for restores and clones. */
  writableCopy(tree: string, dest: string): Promise<void>;
}

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The inode number of every btrfs subvolume root. */
const BTRFS_SUBVOL_INO = 256;

async function isSubvolume(path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    return st.ino === BTRFS_SUBVOL_INO && st.isDirectory() && (await statfs(path)).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

async function cpTree(src: string, dest: string, reflink: 'always' | 'auto'): Promise<void> {
  await mkdir(dest);
  await execProgram('cp', ['-a', `--reflink=${reflink}`, '--', `${src}/.`, `${dest}/`]);
}

/** Make a tree durable: syncfs of the filesystem it is on. */
export async function syncTree(path: string): Promise<void> {
  await execProgram('sync', ['-f', path]);
}

/** Build a snapshot tree in the worker thread (see link-worker.ts). */
function buildTree(reflink: 'always' | 'auto', live: string, dest: string, prev?: { tree: string; manifest?: Manifest }, manifestOut?: string): Promise<SnapshotStats> {
  return new Promise<SnapshotStats>((resolve, reject) => {
    const job: LinkJob = { reflink, live, dest, manifestOut: manifestOut ?? `${dest}.manifest-discard`, ...(prev?.manifest ? { prevTree: prev.tree, prevManifest: prev.manifest } : {}) };
    const worker = new Worker(new URL('./link-worker.js', import.meta.url), { workerData: job });
    worker.once('message', (m: { ok: boolean; result?: LinkResult; error?: string }) => (m.ok ? resolve(m.result!) : reject(new Error(m.error))));
    worker.once('error', reject);
  });
}

const reflinkMethod: SnapshotMethod = {
  name: 'reflink',
  createLive: async (path) => void (await mkdir(path)),
  snapshot: (live, dest, prev, manifestOut) => buildTree('always', live, dest, prev, manifestOut),
  writableCopy: (tree, dest) => cpTree(tree, dest, 'always'),
};

const hardlinkMethod: SnapshotMethod = {
  name: 'hardlink',
  createLive: async (path) => void (await mkdir(path)),
  snapshot: (live, dest, prev, manifestOut) => buildTree('auto', live, dest, prev, manifestOut),
  writableCopy: (tree, dest) => cpTree(tree, dest, 'auto'),
};

const btrfsMethod: SnapshotMethod = {
  name: 'btrfs',
  createLive: async (path) => void (await execProgram('btrfs', ['subvolume', 'create', path])),
  snapshot: async (live, dest, prev, manifestOut) => {
    // Volumes made before the pool was btrfs (or restored from elsewhere) are plain directories.
    if (!(await isSubvolume(live))) return reflinkMethod.snapshot(live, dest, prev, manifestOut);
    await execProgram('btrfs', ['subvolume', 'snapshot', '-r', live, dest]);
    return {};
  },
  writableCopy: async (tree, dest) => {
    if (!(await isSubvolume(tree))) return reflinkMethod.writableCopy(tree, dest);
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
 * Delete a tree that may hold btrfs subvolumes (read-only snapshots cannot be emptied by rm): delete the
 * subvolumes inside it, deepest first, with `btrfs subvolume delete`, then the rest.
 */
export async function removeTree(path: string): Promise<void> {
  // A subvolume (snapshot, or a btrfs pool's volume data) goes in O(1) with `subvolume delete`, where rm
  // would walk every file; it fails if the subvolume holds others, then the walk below handles it.
  const top = await lstat(path).catch(() => undefined);
  if (top?.isDirectory() && top.ino === BTRFS_SUBVOL_INO && (await statfs(path)).type === BTRFS_SUPER_MAGIC) {
    try {
      await execProgram('btrfs', ['subvolume', 'delete', path]);
      return;
    } catch {
      /* nested subvolumes or an old kernel: fall through */
    }
  }
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (err) {
    if (!isErrno(err, 'EROFS') && !isErrno(err, 'EPERM') && !isErrno(err, 'ENOTEMPTY') && !isErrno(err, 'EACCES')) throw err;
  }
  const subvols: string[] = [];
  const walk = async (p: string, depth: number): Promise<void> => {
    let st;
    try {
      st = await lstat(p);
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    if (st.ino === BTRFS_SUBVOL_INO && (await statfs(p)).type === BTRFS_SUPER_MAGIC) subvols.push(`${depth}\0${p}`);
    for (const e of await readdir(p).catch(() => [] as string[])) await walk(join(p, e), depth + 1);
  };
  await walk(path, 0);
  subvols.sort((x, y) => Number(y.split('\0')[0]) - Number(x.split('\0')[0]));
  for (const s of subvols) {
    const p = s.split('\0')[1]!;
    try {
      await execProgram('btrfs', ['subvolume', 'delete', p]);
    } catch (err) {
      throw new Error(`cannot delete ${p}: ${errorMessage(err)}`);
    }
  }
  await rm(path, { recursive: true, force: true });
}
