/** `mkdir -p` whose error names the real cause: Node 20's recursive mkdir reports a full disk (ENOSPC) as ENOENT. */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isErrno } from './errors.js';

/**
 * Make `path` and its missing parents (each with `mode`, as `mkdir({ recursive: true })` does). When
 * a directory cannot be made for want of space, Node's recursive mkdir stats the path it could not make
 * and rejects with that stat's ENOENT, which reads as "does not exist" rather than "disk full"; so an
 * ENOENT is retried one level at a time, where each mkdir's own error comes back.
 */
export async function makeDirs(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode });
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    await makeStepwise(path, mode);
  }
}

async function makeStepwise(path: string, mode: number | undefined): Promise<void> {
  try {
    await mkdir(path, { mode });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return;
    const parent = dirname(path);
    if (!isErrno(err, 'ENOENT') || parent === path) throw err;
    await makeStepwise(parent, mode);
    await mkdir(path, { mode }).catch((again: unknown) => {
      if (!isErrno(again, 'EEXIST')) throw again;
    });
  }
}
