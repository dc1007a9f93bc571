/** Atomic, durable writes: temporary file, fsync, rename, fsync of the directory. */
import { open, rename, unlink, readFile, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isErrno } from './errors.js';
import { execProgram } from './exec.js';

/** Make a tree durable: syncfs of the filesystem it is on (`sync -f`: Node has no syncfs). */
export async function syncTree(path: string): Promise<void> {
  await execProgram('sync', ['-f', path]);
}

/** fsync a file or a directory (opened read-only: fsync needs no write access). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Directories that stay where they are while ferryd runs (a local pool's volumes and trash, the catalog's
 * record directories), by path: their handles are kept open, so that flushing one (twice in every create
 * and remove) is one call instead of an open, an fsync and a close. At most KEPT_DIRS of them, the oldest
 * closed first (tests make many pools in one process).
 */
const kept = new Map<string, Promise<FileHandle>>();
const KEPT_DIRS = 64;

/** Keep a handle of the directory at `path` for fsyncDir (only for a directory that is never replaced while ferryd runs). */
export function keepDirOpen(path: string): void {
  if (kept.has(path)) return;
  const oldest = kept.keys().next();
  if (kept.size >= KEPT_DIRS && !oldest.done) {
    // (a flush already under way on it finishes first: close waits for the handle's pending calls)
    void kept.get(oldest.value)!.then((fh) => fh.close()).catch(() => undefined);
    kept.delete(oldest.value);
  }
  const handle = open(path, 'r');
  handle.catch(() => kept.get(path) === handle && kept.delete(path));
  kept.set(path, handle);
}

/** fsync a directory so that a rename or unlink inside it is durable. */
export async function fsyncDir(path: string): Promise<void> {
  const handle = kept.get(path);
  if (handle) {
    try {
      return await (await handle).sync();
    } catch (err) {
      // (a handle closed meanwhile to make room, or one that could not be opened: the usual way below)
      if (kept.get(path) === handle) throw err;
    }
  }
  return fsyncPath(path);
}

/**
 * Write a file so that a reader (or a crash) sees either the old content or the new one, never a mix:
 * write a temporary file beside it, fsync it, rename it over the target, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[], mode = 0o644): Promise<void> {
  await (await stageFileAtomic(path, data, mode)).commit();
}

/** A file written and fsynced beside its target, not yet in place: `commit` renames it over the target and fsyncs the directory. */
export interface StagedFile {
  commit(): Promise<void>;
  /** Remove the temporary file (the target is untouched). */
  discard(): Promise<void>;
}

/**
 * The first half of `writeFileAtomic`, for a caller that overlaps it with other work which must be durable
 * before the file appears (a volume's record is renamed into place only once its directory is on disk).
 */
export async function stageFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[], mode = 0o644): Promise<StagedFile> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', mode);
  try {
    if (Array.isArray(data)) {
      // One writev (libuv repeats it past IOV_MAX and after short writes). But when a write fails after
      // some bytes went, libuv reports the bytes and drops the error (a disk that filled up mid-way): the
      // rest is written again, which raises that error or completes.
      const parts = data as Uint8Array[];
      const total = parts.reduce((n, b) => n + b.length, 0);
      const { bytesWritten } = await fh.writev(parts);
      if (bytesWritten < total) await fh.writeFile(Buffer.concat(parts).subarray(bytesWritten));
    } else await fh.writeFile(data as string | Uint8Array);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  return {
    commit: async () => {
      try {
        await rename(tmp, path);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      await fsyncDir(dir);
    },
    discard: () => unlink(tmp).catch(() => undefined),
  };
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Read a JSON file; undefined when it does not exist. */
export async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}
