/** Atomic, durable writes: temporary file, fsync, rename, fsync of the directory. */
import { open, rename, unlink, readFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isErrno } from './errors.js';

/** fsync a file or a directory (opened read-only: fsync needs no write access). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so that a rename or unlink inside it is durable. */
export const fsyncDir = fsyncPath;

/**
 * Write a file so that a reader (or a crash) sees either the old content or the new one, never a mix:
 * write a temporary file beside it, fsync it, rename it over the target, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
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
export async function stageFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<StagedFile> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
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
