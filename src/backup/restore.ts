/**
 * Restore a backup into a directory: directories, files (sparse where the data is zero), symlinks,
 * hard links, FIFOs and device nodes, then owners, modes and times; directories' metadata last,
 * deepest first, so that creating their entries does not change their times again.
 */
import { chmod, chown, lchown, link, lutimes, mkdir, open, readdir, symlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, isErrno } from '../util/errors.js';
import { execProgram } from '../util/exec.js';
import { parallel, type Repository } from './repository.js';
import type { TreeNode } from './tree.js';

export interface RestoreProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface RestoreOptions {
  onProgress?: (p: RestoreProgress) => void;
}

export interface RestoreResult {
  id: string;
  files: number;
  dirs: number;
  bytes: number;
  durationMs: number;
  /** Things that could not be restored as they were (e.g. owners when not running as root). */
  warnings: string[];
}

const BLOCK = 4096;
const ZERO = Buffer.alloc(BLOCK);
const FILES_IN_PARALLEL = 4;
const READ_AHEAD = 3;

/**
 * Seconds as a float, as utimes() wants them. libuv keeps whole microseconds of that float (it
 * truncates time × 10⁶), and a double holds today's times only to about 0.24 µs, so aim at the middle
 * of the wanted microsecond: the result is the recorded time truncated to the microsecond, exactly.
 */
export function nsToSeconds(ns: string): number {
  const b = BigInt(ns);
  const sec = b / 1_000_000_000n;
  const us = (b % 1_000_000_000n) / 1000n;
  return Number(sec) + (Number(us) * 1000 + 500) / 1e9;
}

export async function runRestore(repo: Repository, id: string, targetDir: string, opts: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const snap = await repo.loadSnapshot(id);
  const release = await repo.lock(false, `restore of ${snap.id}`);
  try {
    await repo.loadIndex(true);
    const nodes = await repo.loadTree(snap);
    const missing = new Set<string>();
    for (const n of nodes) for (const c of n.content ?? []) if (typeof c === 'string' && !repo.index.has(c)) missing.add(c);
    if (missing.size) throw new FerryError('corrupt', `backup ${snap.id} needs ${missing.size} chunks that are missing from ${repo.url}; run verify`, { backup: snap.id });

    await mkdir(targetDir, { recursive: true });
    const existing = await readdir(targetDir);
    if (existing.length) throw new FerryError('exists', `restore: ${targetDir} is not empty`);

    const warnings: string[] = [];
    let ownerWarned = false;
    const own = async (fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        if (!isErrno(err, 'EPERM')) throw err;
        if (!ownerWarned) warnings.push('owners not restored: not permitted (run as root)');
        ownerWarned = true;
      }
    };
    const files = nodes.filter((n) => n.type === 'file');
    const progress: RestoreProgress = { filesDone: 0, filesTotal: nodes.filter((n) => n.type !== 'dir').length, bytesDone: 0, bytesTotal: files.reduce((a, n) => a + (n.size ?? 0), 0) };
    const report = () => opts.onProgress?.({ ...progress });
    report();
    const abs = (n: TreeNode) => (n.path === '.' ? targetDir : join(targetDir, n.path));

    for (const n of nodes) if (n.type === 'dir' && n.path !== '.') await mkdir(abs(n), { mode: 0o700 });

    await parallel(files, FILES_IN_PARALLEL, async (n) => {
      const fh = await open(abs(n), 'wx', 0o600);
      try {
        await writeContent(repo, fh, n, (bytes) => {
          progress.bytesDone += bytes;
          report();
        });
        await own(() => fh.chown(n.uid, n.gid));
        await fh.chmod(n.mode);
        await fh.utimes(nsToSeconds(n.atime ?? n.mtime), nsToSeconds(n.mtime));
      } finally {
        await fh.close();
      }
      progress.filesDone++;
      report();
    });

    for (const n of nodes) {
      const p = abs(n);
      switch (n.type) {
        case 'symlink':
          await symlink(n.target!, p);
          await own(() => lchown(p, n.uid, n.gid));
          await lutimes(p, nsToSeconds(n.atime ?? n.mtime), nsToSeconds(n.mtime));
          break;
        case 'hardlink':
          await link(join(targetDir, n.target!), p);
          break;
        case 'fifo':
        case 'char':
        case 'block': {
          const mode = (n.mode & 0o7777).toString(8);
          if (n.type === 'fifo') await execProgram('mkfifo', ['-m', mode, '--', p]);
          else {
            const r = n.rdev ?? 0;
            const major = ((r >>> 8) & 0xfff) | (Math.floor(r / 2 ** 32) & ~0xfff);
            const minor = (r & 0xff) | ((r >>> 12) & ~0xff & 0xfffff);
            await execProgram('mknod', ['-m', mode, '--', p, n.type === 'char' ? 'c' : 'b', String(major), String(minor)]);
          }
          await own(() => chown(p, n.uid, n.gid));
          await chmod(p, n.mode);
          await utimes(p, nsToSeconds(n.atime ?? n.mtime), nsToSeconds(n.mtime));
          break;
        }
        default:
          continue;
      }
      progress.filesDone++;
    }
    report();

    const dirs = nodes.filter((n) => n.type === 'dir').reverse();
    for (const n of dirs) {
      const p = abs(n);
      await own(() => chown(p, n.uid, n.gid));
      await chmod(p, n.mode);
      await utimes(p, nsToSeconds(n.atime ?? n.mtime), nsToSeconds(n.mtime));
    }
    return { id: snap.id, files: progress.filesTotal, dirs: dirs.length, bytes: progress.bytesDone, durationMs: Date.now() - started, warnings };
  } finally {
    await release().catch(() => undefined);
  }
}

/** Write a file's chunks, leaving holes for zero runs and zero 4 KiB blocks, then set its size. */
async function writeContent(repo: Repository, fh: FileHandle, n: TreeNode, done: (bytes: number) => void): Promise<void> {
  const content = n.content ?? [];
  const fetches: Array<Promise<Buffer> | undefined> = content.map(() => undefined);
  const fetch = (i: number) => {
    const c = content[i];
    if (i < content.length && typeof c === 'string' && !fetches[i]) {
      const p = repo.readBlob(c);
      p.catch(() => undefined); // awaited below; avoid an unhandled rejection if we stop early
      fetches[i] = p;
    }
  };
  for (let i = 0; i < READ_AHEAD; i++) fetch(i);
  let pos = 0;
  for (let i = 0; i < content.length; i++) {
    fetch(i + READ_AHEAD);
    const c = content[i]!;
    if (typeof c === 'number') {
      pos += c;
      done(c);
      continue;
    }
    const buf = await fetches[i]!;
    fetches[i] = undefined;
    await writeSparse(fh, buf, pos);
    pos += buf.length;
    done(buf.length);
  }
  await fh.truncate(pos);
}

async function writeSparse(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  // Blocks aligned to the file offset, so skipped blocks become holes in the file system.
  const isZero = (s: number, e: number) => buf.subarray(s, e).equals(ZERO.subarray(0, e - s));
  const next = (s: number) => Math.min(buf.length, s + BLOCK - ((pos + s) % BLOCK));
  let i = 0;
  while (i < buf.length) {
    while (i < buf.length && isZero(i, next(i))) i = next(i);
    if (i >= buf.length) break;
    let j = next(i);
    while (j < buf.length && !isZero(j, next(j))) j = next(j);
    let off = i;
    while (off < j) {
      const { bytesWritten } = await fh.write(buf, off, j - off, pos + off);
      off += bytesWritten;
    }
    i = j;
  }
}
