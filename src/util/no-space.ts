/** A full filesystem (ENOSPC, EDQUOT), wherever it is met, becomes `no space left on WHERE (N bytes free)`. */
import { statfs } from 'node:fs/promises';
import { FerryError, errorMessage, isErrno } from './errors.js';

/** ENOSPC or EDQUOT, also when it comes back as text (from a worker thread or cp's stderr). */
export function isNoSpace(err: unknown): boolean {
  if (err instanceof FerryError) return err.code === 'no_space' || /No space left on device|Disk quota exceeded|ENOSPC|EDQUOT/.test(err.message);
  // (errorMessage names EDQUOT, which Node 20 does not)
  return isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT') || /No space left on device|Disk quota exceeded|ENOSPC|EDQUOT/.test(errorMessage(err));
}

/** Bytes an unprivileged writer could still use on the filesystem of `path` (undefined if it cannot be asked). */
export async function freeBytes(path: string): Promise<number | undefined> {
  try {
    const fs = await statfs(path);
    return fs.bavail * fs.bsize;
  } catch {
    return undefined;
  }
}

/**
 * Run `fn`; a full filesystem becomes a `no_space` error naming `where` (a pool name, or "the data dir
 * PATH") and its free bytes, measured at `path`, with what was tried. Anything else passes unchanged.
 */
export async function mapNoSpace<T>(where: string, path: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw await noSpaceError(err, where, path, what);
  }
}

/** The error to throw for `err`: a `no_space` one when the disk was full, else `err` itself. */
export async function noSpaceError(err: unknown, where: string, path: string, what: string): Promise<unknown> {
  // (a no_space error says already where: e.g. a backup target)
  if (!isNoSpace(err) || (err instanceof FerryError && err.code === 'no_space')) return err;
  if (/Disk quota exceeded|EDQUOT/.test(errorMessage(err))) {
    // not a full filesystem: a volume's size limit (a btrfs qgroup, -o size=); the pool's free bytes would mislead
    return new FerryError('no_space', `a size limit was reached on ${where} (Disk quota exceeded): ${what} failed and nothing was kept; give the volume a larger size (-o size=, \`ferry volume resize\`)`, { where, quota: true });
  }
  const free = await freeBytes(path);
  const need = NEEDS.get(err as object);
  return new FerryError('no_space', `no space left on ${where} (${free ?? 'unknown'} bytes free${need ? `; ${need}` : ''}): ${what} failed and nothing was kept; free space on it and try again`, { where, freeBytes: free });
}

const NEEDS = new WeakMap<object, string>();

/** Say what the write that met a full disk needed ("a new image of 64 MiB is needed"): the no_space error names it. */
export function withNeed<E extends object>(err: E, need: string): E {
  NEEDS.set(err, need);
  return err;
}
