// The child process that makes a shared pool's filesystem calls, so that a hung share stalls it and never ferryd.
import { readdirSigs, sigOf } from './share-sigs.js';
import { glusterCaches } from './gluster-cache.js';
import { inoOf } from './data-id.js';
import { link, lstat, mkdir, open, readdir, readFile, rename, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeDirs } from '../util/make-dirs.js';

/**
 * Started by share-io.ts with an IPC channel. Each message is one call `{ id, op, args }`; the answer is
 * `{ id, value }` or `{ id, error: { code, message } }`. The calls run on this process's own libuv
 * threadpool: when the share hangs, only this process waits, and ferryd kills it and starts another.
 */
type Args = unknown[];

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeNew(path: string, text: string, mode = 0o644): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function du(root: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    total += st.blocks * 512;
    if (st.isDirectory()) for (const e of await readdir(path)) await walk(join(path, e));
  };
  try {
    await walk(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return total;
}

const ops: Record<string, (...a: any[]) => Promise<unknown>> = {
  async stat(p: string) {
    const s = await stat(p);
    return { nlink: s.nlink, ino: s.ino, isDirectory: s.isDirectory(), size: s.size };
  },
  ino: (p: string) => inoOf(p),
  glusterCaches: (root: string) => glusterCaches(root),
  async exists(p: string) {
    try {
      await lstat(p);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  },
  async statfs(p: string) {
    const s = await statfs(p);
    return { blocks: s.blocks, bsize: s.bsize, bavail: s.bavail, bfree: s.bfree };
  },
  readText: (p: string) => readFile(p, 'utf8'),
  async writeAtomic(p: string, text: string, makeDir = false) {
    if (makeDir) await makeDirs(dirname(p), 0o700);
    const tmp = join(dirname(p), `.${basename(p)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await writeNew(tmp, text);
      await rename(tmp, p);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(dirname(p));
  },
  writeNew: (p: string, text: string) => writeNew(p, text),
  writeExclusive: (p: string, text: string) => writeFile(p, text, { flag: 'wx' }),
  link: (a: string, b: string) => link(a, b),
  unlink: (p: string) => unlink(p),
  rename: (a: string, b: string) => rename(a, b),
  readdir: (p: string) => readdir(p),
  readdirSigs: (p: string) => readdirSigs(p),
  sig: (p: string) => sigOf(p),
  async readdirDirs(p: string) {
    return (await readdir(p, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  },
  async mkdir(p: string, recursive: boolean) {
    await (recursive ? makeDirs(p, 0o700) : mkdir(p, { mode: 0o700 }));
  },
  fsyncDir,
  du,
};

process.on('message', (m: { id: number; op: string; args: Args }) => {
  const fn = ops[m.op];
  const p = fn ? fn(...m.args) : Promise.reject(Object.assign(new Error(`unknown call ${m.op}`), { code: 'EINVAL' }));
  p.then(
    (value) => process.send?.({ id: m.id, value }),
    (err: NodeJS.ErrnoException) => process.send?.({ id: m.id, error: { code: err.code, message: err.message } }),
  );
});
process.on('disconnect', () => process.exit(0));
