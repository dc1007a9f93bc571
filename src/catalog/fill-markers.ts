/** Markers of creates that fill a new volume (a restore, a clone): a directory a crash left mid-fill is discarded at start-up, never adopted. */
import { open, readFile, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir } from '../util/atomic.js';
import { isErrno } from '../util/errors.js';
import { makeDirs } from '../util/make-dirs.js';
import { noSpaceError } from '../util/no-space.js';

/**
 * A volume directory without a record is adopted at start-up (a plain create cut short between its directory
 * and its record: an empty volume, or data someone put there). A restore or a clone fills its directory before
 * the record is written, so a crash meanwhile would leave part of the data, adopted as if whole. A marker,
 * on disk before the directory is made and removed once the record is, tells recovery which is which. It holds
 * the pool's name, so a recordless directory of that name in another pool is still adopted.
 */
export class FillMarkers {
  constructor(private readonly dir: string) {}

  /** Mark a create of `name` in `pool` that fills its data (durable before it returns; a full data dir is a `no_space` error naming it). */
  async mark(name: string, pool: string): Promise<void> {
    try {
      await makeDirs(this.dir, 0o700);
      const fh = await open(join(this.dir, name), 'w', 0o600);
      try {
        await fh.writeFile(pool);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsyncDir(this.dir);
    } catch (err) {
      await this.clear(name).catch(() => undefined);
      throw await noSpaceError(err, `the data dir ${dirname(dirname(this.dir))}`, dirname(this.dir), `marking the restore or clone of ${name}`);
    }
  }

  /** The create of `name` ended: its record is written, or its directory gone. */
  async clear(name: string): Promise<void> {
    try {
      await unlink(join(this.dir, name));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }

  /**
   * The creates a crash cut short: name → pool. The pool is undefined if the marker does not name one (written
   * before markers held it, or cut short itself before its content reached the disk): any pool, then.
   */
  async list(): Promise<Map<string, string | undefined>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return new Map();
      throw err;
    }
    const cut = new Map<string, string | undefined>();
    for (const name of names) {
      const pool = await readFile(join(this.dir, name), 'utf8').catch((err: unknown) => (isErrno(err, 'ENOENT') ? '' : Promise.reject(err)));
      cut.set(name, pool || undefined);
    }
    return cut;
  }
}
