import { chmod, chown, lstat, mkdir, readdir, rename, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';
import { fsyncDir } from '../util/atomic.js';
import type { VolumeOptions } from '../volumes/options.js';
import type { Pool, PoolStatus } from './pool.js';
import { METHODS, detectMethod, removeTree, syncTree, type SnapshotMethod } from '../snapshots/methods.js';

/**
 * A pool of plain directories: ROOT/volumes/NAME/data is what Docker bind-mounts, ROOT/trash/ID holds
 * removed volumes until they are purged. Moves are renames inside one filesystem, so they are atomic.
 */
export class DirPool implements Pool {
  readonly kind = 'dir';
  private readonly live: string;
  private readonly trash: string;
  private method: SnapshotMethod | undefined;

  constructor(
    readonly name: string,
    readonly root: string,
  ) {
    this.live = join(root, 'volumes');
    this.trash = join(root, 'trash');
  }

  async init(): Promise<void> {
    await mkdir(this.live, { recursive: true, mode: 0o700 });
    await mkdir(this.trash, { recursive: true, mode: 0o700 });
    this.method = METHODS[await detectMethod(this.root)];
  }

  get snapshotMethod(): SnapshotMethod {
    if (!this.method) throw new Error(`pool ${this.name} is not initialised`);
    return this.method;
  }

  volumeRoot(volume: string): string {
    return join(this.live, volume);
  }

  mountpoint(volume: string): string {
    return join(this.live, volume, 'data');
  }

  async create(volume: string, opts: VolumeOptions, from?: string): Promise<void> {
    const dir = join(this.live, volume);
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (isErrno(err, 'EEXIST')) {
        throw new FerryError('exists', `pool ${this.name} already holds a directory for volume ${volume} (${dir})`);
      }
      throw err;
    }
    try {
      const data = this.mountpoint(volume);
      if (from) {
        await this.snapshotMethod.writableCopy(from, data);
        await syncTree(data);
      } else {
        await this.snapshotMethod.createLive(data);
      }
      if (opts.mode !== undefined || !from) await chmod(data, opts.mode ?? 0o755);
      if (opts.uid !== undefined || opts.gid !== undefined) await chown(data, opts.uid ?? 0, opts.gid ?? 0);
      await Promise.all([fsyncDir(dir), fsyncDir(this.live)]);
    } catch (err) {
      await removeTree(dir);
      throw err;
    }
  }

  async checkMountable(volume: string): Promise<void> {
    try {
      const st = await stat(this.mountpoint(volume));
      if (!st.isDirectory()) throw new Error('not a directory');
    } catch (err) {
      throw new FerryError(
        'unavailable',
        `the data of volume ${volume} is missing from pool ${this.name} (${this.mountpoint(volume)}: ${errorMessage(err)}); check the pool's filesystem`,
      );
    }
  }

  async moveToTrash(volume: string, trashId: string): Promise<void> {
    await rename(join(this.live, volume), join(this.trash, trashId));
    await Promise.all([fsyncDir(this.live), fsyncDir(this.trash)]);
  }

  async restoreFromTrash(trashId: string, volume: string): Promise<void> {
    await rename(join(this.trash, trashId), join(this.live, volume));
    await Promise.all([fsyncDir(this.trash), fsyncDir(this.live)]);
  }

  async purgeTrash(trashId: string): Promise<void> {
    await removeTree(join(this.trash, trashId));
  }

  hasLive(volume: string): Promise<boolean> {
    return exists(join(this.live, volume));
  }

  hasTrash(trashId: string): Promise<boolean> {
    return exists(join(this.trash, trashId));
  }

  async listLive(): Promise<string[]> {
    return (await readdir(this.live, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  }

  async usage(volume: string): Promise<number> {
    return du(this.mountpoint(volume));
  }

  async status(): Promise<PoolStatus> {
    const base = { name: this.name, kind: this.kind, path: this.root };
    try {
      const fs = await statfs(this.root);
      const totalBytes = fs.blocks * fs.bsize;
      const freeBytes = fs.bavail * fs.bsize;
      return { ...base, snapshotMethod: this.snapshotMethod.name, ok: true, capacity: { totalBytes, freeBytes, usedBytes: totalBytes - fs.bfree * fs.bsize } };
    } catch (err) {
      return { ...base, snapshotMethod: this.method?.name ?? 'unknown', ok: false, problem: errorMessage(err) };
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/** Disk usage of a tree in bytes (allocated blocks, hard links counted once), like `du -s`. */
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
    if (st.isDirectory()) {
      for (const entry of await readdir(path)) await walk(join(path, entry));
    }
  };
  try {
    await walk(root);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  return total;
}
