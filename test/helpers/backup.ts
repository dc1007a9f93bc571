import assert from 'node:assert/strict';
import { fingerprint } from './tree.js';

/**
 * fingerprint() of two trees must match, except that times of non-directories are compared to the
 * microsecond: Node's utimes() (libuv) sets times to the microsecond, so a restore cannot bring back
 * the nanoseconds a backup records.
 */
export function assertSameTree(original: string, restored: string): void {
  const norm = (fp: ReturnType<typeof fingerprint>) => {
    for (const e of Object.values(fp)) if (e.type !== 'dir') e.mtime = e.mtime.slice(0, -3);
    return fp;
  };
  assert.deepEqual(norm(fingerprint(restored)), norm(fingerprint(original)));
}
