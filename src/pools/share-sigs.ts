/** A directory's entries with a signature of each (inode, mtime, ctime, size): what changed since the last look, without opening a file. */
import { lstat, readdir } from 'node:fs/promises';

/** The signature of one path (as readdirSigs gives it). */
export async function sigOf(path: string): Promise<string> {
  const s = await lstat(path, { bigint: true });
  return `${s.ino}:${s.mtimeNs}:${s.ctimeNs}:${s.size}`;
}

/**
 * `[name, signature]` of every entry of `dir` that is still there when stat'ed (a file replaced by rename(2)
 * gets another inode, and every write another mtime). One READDIRPLUS on a FUSE or NFS share: the kernel
 * caches the attributes it brings (for about a second on GlusterFS), so the lstat calls after it do not reach
 * the server; they are made several at a time, so that 10,000 entries are stat'ed well within that second.
 */
export async function readdirSigs(dir: string): Promise<Array<[string, string]>> {
  const names = await readdir(dir);
  const sigs: Array<string | undefined> = new Array(names.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < names.length; i = next++) {
      try {
        sigs[i] = await sigOf(`${dir}/${names[i]}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // (renamed away meanwhile)
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_WIDTH, names.length) }, worker));
  const out: Array<[string, string]> = [];
  for (let i = 0; i < names.length; i++) if (sigs[i] !== undefined) out.push([names[i]!, sigs[i]!]);
  return out;
}

/** How many lstat calls readdirSigs has in flight (libuv's threadpool runs four at a time). */
const STAT_WIDTH = 16;
