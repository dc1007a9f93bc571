/** The directory pool: a directory per volume on a local or shared filesystem, with its snapshot method. */
import { lstatSync, statSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, rename, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';
import { fsyncDir, keepDirOpen, syncTree } from '../util/atomic.js';
import { withTimeout } from '../util/mounts.js';
import type { Pool, PoolStatus, VolumeSpec } from './pool.js';
import { RESTORE_MARKER } from './layout.js';
import { ensureFreshData, inoOf } from './data-id.js';
import { glusterCaches, type GlusterCaches } from './gluster-cache.js';
import { METHODS, detectMethod, removeTree, type SnapshotMethod } from './trees/methods.js';
import { ShareIo, shareFsOf } from './share-io.js';
import { refusingLimits, sizeLimitsFor, type SizeLimits } from './size-limits.js';
import type { ShareFs } from './share-fs.js';
import { readdirSigs } from './share-sigs.js';
import { ShareCheck, type PoolMountSpec } from './share-check.js';
import { makeDirs } from '../util/make-dirs.js';

export interface DirPoolSpec {
  /** Every host mounts the same filesystem at `root` (NFS, GlusterFS, CephFS...). */
  shared?: boolean;
  mount?: PoolMountSpec;
  /** A shared pool: how long one filesystem call may take before the pool is stalled (default 5 s, see share-io.ts). */
  deadlineMs?: number;
  /** Told when a shared pool stalls and when it answers again. */
  onStall?: (pool: string, stall: { since: string; call: string } | undefined) => void;
}

/** How long `status()` waits for a shared pool's check before it answers with what it knows. */
const STATUS_WAIT_MS = 1000;

/**
 * A pool of plain directories: ROOT/volumes/NAME/data is what Docker bind-mounts, ROOT/trash/ID holds
 * removed volumes until they are purged. Moves are renames inside one filesystem, so they are atomic.
 *
 * A shared pool is only used while its filesystem is really mounted, which the marker file ROOT/.ferry-pool
 * proves: under a dead mount the directory is an empty local one, and nothing may be written there.
 */
export class DirPool implements Pool {
  readonly kind = 'dir';
  readonly shared: boolean;
  private readonly live: string;
  private readonly trash: string;
  /** Volumes being made for a shared pool's create: ROOT/staging/ID, renamed into ROOT/volumes/NAME once whole. */
  private readonly staging: string;
  private method: SnapshotMethod | undefined;
  private limits: SizeLimits | undefined;
  /** A shared pool's filesystem calls: in a child process, with a deadline (see share-io.ts). */
  private readonly io: ShareIo | undefined;
  readonly shareFs: ShareFs | undefined;
  private lastCapacity: PoolStatus['capacity'];
  /** A shared pool's check that its filesystem is there (share-check.ts). */
  private readonly share: ShareCheck | undefined;

  constructor(
    readonly name: string,
    readonly root: string,
    private readonly spec: DirPoolSpec = {},
  ) {
    this.live = join(root, 'volumes');
    this.trash = join(root, 'trash');
    this.staging = join(root, 'staging');
    this.shared = spec.shared ?? false;
    if (this.shared) {
      this.io = new ShareIo({ pool: name, ...(spec.deadlineMs ? { deadlineMs: spec.deadlineMs } : {}), onChange: (s) => spec.onStall?.(name, s) });
      this.shareFs = shareFsOf(this.io);
      this.share = new ShareCheck(name, root, this.io, spec.mount);
    }
  }

  /** Set while the shared filesystem does not answer (see share-io.ts). */
  get stalled(): { since: string; call: string } | undefined {
    return this.io?.stalled;
  }

  async init(): Promise<void> {
    if (this.shared && !(await this.checkShare())) return; // ferryd still starts; the pool says why it is down
    if (this.io) {
      await this.io.call('mkdir', [this.live, true]);
      await this.io.call('mkdir', [this.trash, true]);
      await this.io.call('mkdir', [this.staging, true]);
    } else {
      await makeDirs(this.live, 0o700);
      await makeDirs(this.trash, 0o700);
      // (flushed at every create and remove: see keepDirOpen)
      keepDirOpen(this.live);
      keepDirOpen(this.trash);
    }
    this.method = METHODS[await detectMethod(this.root)];
    this.limits = await sizeLimitsFor({ name: this.name, root: this.root, shared: this.shared, method: this.method.name });
  }

  /** Is the shared filesystem there? (share-check.ts; false, with `down` saying why, when it is not) */
  checkShare(): Promise<boolean> {
    return this.share!.check();
  }

  /** Why a shared pool is down, or undefined. */
  private get problem(): string | undefined {
    return this.share?.problem;
  }

  /** Throws `unavailable` when the pool cannot be used now (shared filesystem missing). */
  async checkAvailable(): Promise<void> {
    if (this.shared) {
      this.share!.refuseIfHung();
      const wasDown = this.problem !== undefined || !this.method;
      if (!(await this.checkShare())) {
        throw new FerryError('unavailable', `pool ${this.name} is not usable: ${this.problem}${/nothing was done$/.test(this.problem ?? '') ? '' : '; nothing was written'}`);
      }
      if (wasDown) await this.init();
    }
  }

  /** Why the pool is down, or undefined. */
  get down(): string | undefined {
    return this.problem;
  }

  get snapshotMethod(): SnapshotMethod {
    if (!this.method) throw new FerryError('unavailable', `pool ${this.name} is not usable: ${this.problem ?? 'not initialised'}`);
    return this.method;
  }

  get sizeLimits(): SizeLimits {
    return this.limits ?? refusingLimits(`option size: pool ${this.name} is not usable: ${this.problem ?? 'not initialised'}`, 'unknown: the pool is not usable');
  }

  // (a checked volume name has no slash and no dot at its start: plain concatenation is join's result, made
  // without join's normalising, which the volume list did 10,000 times)
  volumeRoot(volume: string): string {
    return `${this.live}/${volume}`;
  }

  mountpoint(volume: string): string {
    return `${this.live}/${volume}/data`;
  }

  async rootSigs(): Promise<Map<string, string>> {
    // (a listing of 10,000 volumes is a long call: it must not make the pool look slow to the calls beside it)
    const list = this.io ? await this.io.call<Array<[string, string]>>('readdirSigs', [this.live], { long: true }) : await readdirSigs(this.live);
    return new Map(list);
  }

  async create(volume: string, opts: VolumeSpec, from?: (data: string) => Promise<void>): Promise<void> {
    await this.checkAvailable();
    if (opts.size !== undefined && this.sizeLimits.refusal) throw new FerryError('invalid', this.sizeLimits.refusal);
    const dir = join(this.live, volume);
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (isErrno(err, 'EEXIST')) {
        throw new FerryError('exists', `pool ${this.name} already holds a directory for volume ${volume} (${dir})`);
      }
      throw err;
    }
    // the new directory's entries and its own entry in the pool: two flushes at once
    await this.fillNew(dir, opts, from, this.live);
  }

  /** The data directory of a fresh volume directory `dir`, made (or filled by `from`) and synced (with `parent`, the directory holding `dir`); `dir` goes on failure. */
  private async fillNew(dir: string, opts: VolumeSpec, from?: (data: string) => Promise<void>, parent?: string): Promise<void> {
    try {
      const data = join(dir, 'data');
      if (from) {
        await from(data);
        await syncTree(data);
      } else {
        await this.snapshotMethod.createLive(data);
      }
      // (a clone's copy of a snapshot carries the limit its source had: set this volume's, or none)
      if (opts.size !== undefined || from) await this.sizeLimits.apply(data, opts.size);
      if (opts.mode !== undefined || !from) await chmod(data, opts.mode ?? 0o755);
      if (opts.uid !== undefined || opts.gid !== undefined) await chown(data, opts.uid ?? 0, opts.gid ?? 0);
      await Promise.all([fsyncDir(dir), parent !== undefined && fsyncDir(parent)]);
    } catch (err) {
      await removeTree(dir);
      throw err;
    }
  }

  async createStaged(stageId: string, opts: VolumeSpec, from?: (data: string) => Promise<void>, fill?: (dir: string) => Promise<void>): Promise<void> {
    await this.stage(stageId, opts, from, fill);
  }

  /** A staged volume's data directory, made (a copy `from` makes, or empty and then filled by `fill`); its path (an image pool's image goes beside it). */
  async stage(stageId: string, opts: VolumeSpec, from?: (data: string) => Promise<void>, fill?: (dir: string) => Promise<void>): Promise<string> {
    await this.checkAvailable();
    if (opts.size !== undefined && this.sizeLimits.refusal) throw new FerryError('invalid', this.sizeLimits.refusal);
    await makeDirs(this.staging, 0o700);
    const dir = join(this.staging, stageId);
    await mkdir(dir, { mode: 0o700 });
    await this.fillNew(dir, opts, from);
    if (fill) await fill(join(dir, 'data'));
    return join(dir, 'data');
  }

  async commitStaged(stageId: string, volume: string): Promise<void> {
    const target = join(this.live, volume);
    // rename(2) onto an existing non-empty directory fails; a volume directory always holds data/
    if (await exists(target)) throw new FerryError('exists', `pool ${this.name} already holds a directory for volume ${volume} (${target})`);
    try {
      await rename(join(this.staging, stageId), target);
    } catch (err) {
      if (isErrno(err, 'EEXIST') || isErrno(err, 'ENOTEMPTY')) throw new FerryError('exists', `pool ${this.name} already holds a directory for volume ${volume} (${target})`);
      throw err;
    }
    await Promise.all([fsyncDir(this.staging), fsyncDir(this.live)]);
  }

  async discardStaged(stageId: string): Promise<void> {
    await removeTree(join(this.staging, stageId));
  }

  async listStaged(): Promise<string[]> {
    if (this.problem) return [];
    if (this.io) return this.io.call<string[]>('readdirDirs', [this.staging]).catch(() => []);
    return readdir(this.staging, { withFileTypes: true }).then((es) => es.filter((d) => d.isDirectory()).map((d) => d.name), () => []);
  }

  /** stat of a file in the pool: through the share's child process (with its deadline) in a shared pool. */
  async statFile(path: string): Promise<{ size: number; isDirectory: boolean }> {
    if (this.io) return this.io.call<{ size: number; isDirectory: boolean }>('stat', [path]);
    const st = await stat(path);
    return { size: st.size, isDirectory: st.isDirectory() };
  }

  async checkMountable(volume: string): Promise<void> {
    // Looked at together, one wait (in a shared pool, one round trip to the share, beside the probe that the share
    // is there, which is what counts first): the data; in a local pool, the journal of a restore that could not be
    // carried out to the end (the data may be half restored); in a shared pool, the restore mark (a restore in
    // progress, or one that a crash of the node doing it cut short)
    if (this.shared) this.share!.refuseIfHung(); // (a share that hangs gets no more calls)
    const available = this.checkAvailable();
    const marker = join(this.live, volume, RESTORE_MARKER);
    const looks: Promise<[boolean, string | undefined, Error | undefined]> = this.io
      ? Promise.all([
          false,
          this.io.call<string>('readText', [marker]).catch(() => undefined),
          this.io.call<{ isDirectory: boolean }>('stat', [this.mountpoint(volume)]).then(
            (s) => (s.isDirectory ? undefined : new Error('not a directory')),
            (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
          ),
        ])
      : Promise.resolve().then(() => [this.journalHere(marker), undefined, this.dataProblemHere(volume)]);
    await available.catch((err: unknown) => {
      looks.catch(() => undefined);
      throw err;
    });
    const [unfinished, mark, st] = await looks;
    if (unfinished) {
      throw new FerryError(
        'unavailable',
        `volume ${volume} has an unfinished restore (${marker}): its data may be half restored, so it is not mounted; restart ferryd (start-up finishes the restore) or run the restore again`,
      );
    }
    if (mark !== undefined) {
      let node = 'another node';
      try {
        node = `node ${String((JSON.parse(mark) as { node?: unknown }).node ?? '(unnamed)')}`;
      } catch {
        // a mark being written: the restore is in progress
      }
      throw new FerryError(
        'unavailable',
        `volume ${volume} is being restored, or its restore was cut short, by ${node} (${marker}); it is not mounted until that restore is finished: ferryd on that node finishes it when it runs again, or run the restore again from any node`,
      );
    }
    if (st instanceof FerryError) throw st;
    if (st) {
      throw new FerryError('unavailable', `the data of volume ${volume} is missing from pool ${this.name} (${this.mountpoint(volume)}: ${errorMessage(st)}); check the pool's filesystem`);
    }
  }

  async clientCaches(): Promise<GlusterCaches> {
    return this.io ? this.io.call<GlusterCaches>('glusterCaches', [this.root]) : glusterCaches(this.root);
  }

  async freshData(volume: string, dirIno?: string): Promise<void> {
    const io = this.io;
    if (!io) return;
    await ensureFreshData(
      {
        readText: (p) => io.call<string>('readText', [p]).catch((err: unknown) => (isErrno(err, 'ENOENT') ? undefined : Promise.reject(err))),
        ino: (p) => io.call<string>('ino', [p]),
        readdir: (p) => io.call<string[]>('readdir', [p]),
      },
      { volume, live: this.live, dirIno },
    );
  }

  async dirIno(volume: string): Promise<string> {
    return this.io ? this.io.call<string>('ino', [join(this.live, volume)]) : inoOf(join(this.live, volume));
  }

  /**
   * In a local pool, whether the restore journal is there, and why the data is not a directory (undefined: it is),
   * asked with synchronous stats: two entries the kernel has cached, on this host's own disk. Through the thread
   * pool each Mount cost two trips and an ENOENT error object (a Mount storm's largest CPU cost: 27 µs against
   * 2 µs a Mount, measured).
   */
  private journalHere(marker: string): boolean {
    return lstatSync(marker, { throwIfNoEntry: false }) !== undefined;
  }

  private dataProblemHere(volume: string): Error | undefined {
    const path = this.mountpoint(volume);
    try {
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) return new Error(`ENOENT: no such file or directory, stat '${path}'`);
      return st.isDirectory() ? undefined : new Error('not a directory');
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
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
    return this.io ? this.io.call<boolean>('exists', [join(this.live, volume)]) : exists(join(this.live, volume));
  }

  hasTrash(trashId: string): Promise<boolean> {
    return this.io ? this.io.call<boolean>('exists', [join(this.trash, trashId)]) : exists(join(this.trash, trashId));
  }

  async listLive(): Promise<string[]> {
    if (this.problem) return [];
    if (this.io) return this.io.call<string[]>('readdirDirs', [this.live]);
    return (await readdir(this.live, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  }

  async listTrash(): Promise<string[]> {
    if (this.problem) return [];
    if (this.io) return this.io.call<string[]>('readdirDirs', [this.trash]);
    return (await readdir(this.trash, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  }

  async usage(volume: string): Promise<number> {
    return this.io ? this.io.call<number>('du', [this.mountpoint(volume)], { long: true }) : du(this.mountpoint(volume));
  }

  async trashUsage(trashId: string): Promise<number> {
    return this.io ? this.io.call<number>('du', [join(this.trash, trashId)], { long: true }) : du(join(this.trash, trashId));
  }

  async status(): Promise<PoolStatus> {
    const base = { name: this.name, kind: this.kind, path: this.root, shared: this.shared, ...(this.spec.mount ? { mount: `${this.spec.mount.type} ${this.spec.mount.device}` } : {}) };
    const down = (problem: string) => ({
      ...base,
      snapshotMethod: this.method?.name ?? 'unknown',
      ok: false,
      problem,
      ...(this.io?.stalled ? { stalled: this.io.stalled } : {}),
      ...(this.io && this.lastCapacity ? { capacity: this.lastCapacity } : {}),
    });
    if (this.shared) {
      // never wait for a hung share: after STATUS_WAIT_MS answer with what is known (the check goes on)
      if (this.io!.stalled) {
        void this.checkShare();
        return down(`pool ${this.name} is not answering (${this.io!.stalled.call} hung for more than ${this.io!.deadlineMs / 1000} s)`);
      }
      const slow = Symbol('slow');
      const up = await withTimeout(this.checkShare(), STATUS_WAIT_MS, 'slow').catch(() => slow);
      if (up === slow) return down(`pool ${this.name} is not answering (${this.io!.slow()?.label ?? 'its check'} has waited over ${STATUS_WAIT_MS / 1000} s)`);
      if (!up) return down(this.problem!);
    }
    try {
      const fs = this.io ? await withTimeout(this.io.call<{ blocks: number; bsize: number; bavail: number; bfree: number }>('statfs', [this.root]), STATUS_WAIT_MS, `pool ${this.name} is not answering (statfs ${this.root} has waited over ${STATUS_WAIT_MS / 1000} s)`) : await statfs(this.root);
      const totalBytes = fs.blocks * fs.bsize;
      const freeBytes = fs.bavail * fs.bsize;
      const capacity = { totalBytes, freeBytes, usedBytes: totalBytes - fs.bfree * fs.bsize };
      if (this.io) this.lastCapacity = capacity;
      return { ...base, snapshotMethod: this.snapshotMethod.name, sizes: this.sizeLimits.summary, ok: true, capacity };
    } catch (err) {
      return down(errorMessage(err));
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
