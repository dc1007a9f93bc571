/** Markers of creates that fill a new volume (a restore, a clone): a directory a crash left mid-fill is discarded at start-up, never adopted. */
import { open, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir } from '../util/atomic.js';
import { isErrno } from '../util/errors.js';
import { makeDirs } from '../util/make-dirs.js';
import { noSpaceError } from '../util/no-space.js';

/**
 * A volume directory without a record is adopted at start-up (a plain create cut short between its directory
 * and its record: an empty volume, or data someone put there). A restore or a clone fills its directory before
 * the record is written, so a crash meanwhile would leave part of the data, adopted as if whole. A marker,
 * on disk before the directory is made and removed once the record is, tells recovery which is which.
 */
export class FillMarkers {
  constructor(private readonly dir: string) {}

  /** Mark a create of `name` that fills its data (durable before it returns; a full data dir is a `no_space` error naming it). */
  async mark(name: string): Promise<void> {
    try {
      await makeDirs(this.dir, 0o700);
      const fh = await open(join(this.dir, name), 'w', 0o600);
      try {
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

  /** The names of creates a crash cut short. */
  async list(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
  }
}
