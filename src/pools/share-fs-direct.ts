// Shared-store filesystem calls made directly with fs.promises (for tests and tools; ferryd uses share-io.ts).
import { link, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../util/atomic.js';
import { readdirSigs, sigOf } from './share-sigs.js';
import type { ShareFs } from './share-fs.js';
import { makeDirs } from '../util/make-dirs.js';

/** No deadline, no child process: a hung share hangs the caller. */
export const directShareFs: ShareFs = {
  readText: (p) => readFile(p, 'utf8'),
  async writeAtomic(p, text, makeDir) {
    if (makeDir) await makeDirs(dirname(p), 0o700);
    await writeFileAtomic(p, text);
  },
  async writeNew(p, text) {
    const fh = await open(p, 'wx', 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  link: (a, b) => link(a, b),
  nlink: async (p) => (await stat(p)).nlink,
  unlink: (p) => unlink(p),
  rename: (a, b) => rename(a, b),
  readdir: (p) => readdir(p),
  readdirSigs,
  sig: sigOf,
  mkdir: async (p) => void (await makeDirs(p, 0o700)),
  fsyncDir,
};
