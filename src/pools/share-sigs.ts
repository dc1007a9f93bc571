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
 * caches the attributes it brings, so the lstat calls after it do not reach the server.
 */
export async function readdirSigs(dir: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const name of await readdir(dir)) {
    try {
      out.push([name, await sigOf(`${dir}/${name}`)]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // (renamed away meanwhile)
    }
  }
  return out;
}
