/** The image pool: each volume a fixed-size filesystem image (ext4 or xfs) in its directory, on this host's disk or on a share, loop-attached and mounted while this host uses it. */
import { chmod, chown, mkdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, fsyncPath } from '../util/atomic.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { KeyedLock } from '../util/keyed-lock.js';
import { sizeText } from '../util/size.js';
import { DirPool } from './dir.js';
import type { PoolMountSpec } from './share-check.js';
import { openView, dropLeftoverViews } from './image-views.js';
import { RESTORE_MNT, STAGE_MNT, settleAttachDir } from './image-settle.js';
import { MIN_IMAGE_BYTES, attachImage, detachImage, execUmount, fillFrom, filesystemUse, growImage, imageFsOf, imageSize, loopsOf, makeImage, mountedAt, type ImageAllocation, type ImageFs } from './image-fs.js';
import type { Pool, PoolStatus, VolumeSpec } from './pool.js';
import type { LimitState, SizeLimits } from './size-limits.js';
import { METHODS, removeTree, type SnapshotMethod } from './trees/methods.js';
import { makeDirs } from '../util/make-dirs.js';
import { isNoSpace, withNeed } from '../util/no-space.js';
import { pauseAt } from '../util/test-pause.js';

export interface ImagePoolSpec {
  /** The filesystem of new images (`-o fs=` picks another). */
  fs: ImageFs;
  /** The size of a volume created without `-o size=`; without it, `size=` is required. */
  defaultSize?: number;
  /** Reserve each image's space on the pool's disk when it is made or grown (`full`, the default), or not (`sparse`). */
  allocate?: ImageAllocation;
  /**
   * The images live on a filesystem every host mounts (NFS, GlusterFS): each volume is used by one host at a
   * time (rwo, the volume service's locks) and mounted on a directory of this host's, `attachDir`/NAME.
   */
  shared?: { attachDir: string; mount?: PoolMountSpec; deadlineMs?: number; onStall?: (pool: string, stall: { since: string; call: string } | undefined) => void };
}

/** The image file in a volume's directory. */
const IMAGE = 'disk.img';

/**
 * ROOT/volumes/NAME/disk.img is the volume's filesystem; ROOT/volumes/NAME/data, where Docker bind-mounts it,
 * is the image's mount point while the volume is attached on this host (by a Docker Mount, a snapshot, a fill)
 * and an empty directory otherwise. The directories (create, trash, listing) are a directory pool's; what is
 * the image's is here. Every attach has its holder: the first attaches, the last detaches; an image is never
 * attached twice (`losetup -j` is asked before each attach).
 *
 * A shared image pool keeps ROOT on the share and mounts an image at ATTACHDIR/NAME on this host (a mount is
 * the host's own, and a share may hang): the images move between hosts, one host at a time. That one host at
 * a time is the volume service's (the rwo lock it takes before each attach, and for snapshots, resizes and
 * restores: Handshake.holdExclusive); here, `losetup -j` sees this host's loop devices only.
 */
export class ImagePool implements Pool {
  readonly kind = 'image';
  readonly shared: boolean;
  private readonly dirs: DirPool;
  private readonly holders = new Map<string, number>();
  private readonly lock = new KeyedLock();
  readonly sizeLimits: SizeLimits;

  constructor(
    readonly name: string,
    readonly root: string,
    private readonly spec: ImagePoolSpec,
  ) {
    const sh = spec.shared;
    this.dirs = new DirPool(name, root, sh ? { shared: true, ...(sh.mount ? { mount: sh.mount } : {}), ...(sh.deadlineMs ? { deadlineMs: sh.deadlineMs } : {}), ...(sh.onStall ? { onStall: sh.onStall } : {}) } : {});
    this.shared = sh !== undefined;
    this.sizeLimits = {
      refusal: undefined,
      summary: `image (${spec.fs}${spec.fs === 'ext4' ? '; xfs with -o fs=xfs' : '; ext4 with -o fs=ext4'}; ${(spec.allocate ?? 'full') === 'full' ? 'space reserved' : 'sparse'})`,
      apply: (data, bytes) => this.grow(this.volumeAt(data), bytes),
      read: (data) => this.readLimit(this.volumeAt(data)),
    };
  }

  get shareFs(): Pool['shareFs'] {
    return this.dirs.shareFs;
  }

  /** Set while the shared filesystem does not answer. */
  get stalled(): { since: string; call: string } | undefined {
    return this.dirs.stalled;
  }

  /** The volume whose mountpoint() `data` is. */
  private volumeAt(data: string): string {
    return this.spec.shared ? basename(data) : basename(dirname(data));
  }

  private get allocation(): ImageAllocation {
    return this.spec.allocate ?? 'full';
  }

  /** The filesystem new volumes get and the size they get without `-o size=` (for status and messages). */
  get settings(): ImagePoolSpec {
    return this.spec;
  }

  async init(): Promise<void> {
    await this.dirs.init();
  }

  /**
   * Can the host filesystem reflink the images (xfs with reflink, btrfs)? Then snapshots are point-in-time copies.
   * Not on a shared pool: a share rarely reflinks, and a frozen copy there would be another file other hosts see.
   */
  private get reflinks(): boolean {
    if (this.shared) return false;
    try {
      return this.dirs.snapshotMethod.name !== 'hardlink';
    } catch {
      return false;
    }
  }

  checkAvailable(): Promise<void> {
    return this.dirs.checkAvailable();
  }

  /** Snapshots copy the mounted tree into the volume's directory on the host (a hard-link tree of what did not change). */
  get snapshotMethod(): SnapshotMethod {
    return METHODS.hardlink;
  }

  volumeRoot(volume: string): string {
    return this.dirs.volumeRoot(volume);
  }

  mountpoint(volume: string): string {
    return this.spec.shared ? `${this.spec.shared.attachDir}/${volume}` : this.dirs.mountpoint(volume);
  }

  private image(volume: string): string {
    return join(this.volumeRoot(volume), IMAGE);
  }

  completeOptions<O extends VolumeSpec>(opts: O): O {
    return opts.size === undefined && this.spec.defaultSize !== undefined ? { ...opts, size: this.spec.defaultSize } : opts;
  }

  /** The volume's size and filesystem as create will make them, or a clear refusal. */
  private plan(what: string, opts: VolumeSpec): { bytes: number; fs: ImageFs } {
    const fs = opts.fs ?? this.spec.fs;
    const bytes = opts.size ?? this.spec.defaultSize;
    if (bytes === undefined) {
      throw new FerryError('invalid', `${what}: pool ${this.name} holds fixed-size images: give a size (-o size=10G), or set defaultSize for the pool in ferryd's config`);
    }
    if (bytes < MIN_IMAGE_BYTES[fs]) throw new FerryError('invalid', `${what}: an ${fs} image holds at least ${sizeText(MIN_IMAGE_BYTES[fs])}; ask for a larger size`);
    return { bytes, fs };
  }

  async create(volume: string, opts: VolumeSpec, from?: (data: string) => Promise<void>): Promise<void> {
    const { bytes, fs } = this.plan(`volume ${volume}`, opts);
    await this.dirs.create(volume, {}); // ROOT/volumes/NAME/data, the mount point (`exists` when taken)
    const data = this.mountpoint(volume);
    try {
      await this.newImage(this.image(volume), bytes, fs);
      if (from || opts.uid !== undefined || opts.gid !== undefined || opts.mode !== undefined) {
        await this.attach(volume);
        try {
          if (from) await fillFrom(data, from);
          await pauseAt('image-filled-attached'); // (a crash test: the image filled and still mounted, no record)
          if (opts.mode !== undefined || !from) await chmod(data, opts.mode ?? 0o755);
          if (opts.uid !== undefined || opts.gid !== undefined) await chown(data, opts.uid ?? 0, opts.gid ?? 0);
        } finally {
          await this.detach(volume);
        }
      }
      await fsyncDir(this.volumeRoot(volume));
    } catch (err) {
      await detachImage(this.image(volume), data).catch(() => undefined);
      await removeTree(this.volumeRoot(volume)).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A shared pool's create: STAGING/ID holds the image (and the empty data directory a local pool's volumes have),
   * filled through a mount of this host's before commitStaged renames it into place.
   */
  async createStaged(stageId: string, opts: VolumeSpec, from?: (data: string) => Promise<void>, fill?: (dir: string) => Promise<void>): Promise<void> {
    if (!this.spec.shared) throw new FerryError('internal', `pool ${this.name} is an image pool on this host's disk: it has no staged creates`);
    const { bytes, fs } = this.plan('the new volume', opts);
    const data = await this.dirs.stage(stageId, {});
    const image = join(dirname(data), IMAGE);
    await this.newImage(image, bytes, fs);
    if (from || fill || opts.uid !== undefined || opts.gid !== undefined || opts.mode !== undefined) {
      const mnt = join(this.spec.shared.attachDir, `${STAGE_MNT}${stageId}`);
      await makeDirs(mnt, 0o700);
      await this.attachAs(image, mnt, fs);
      try {
        if (from) await fillFrom(mnt, from);
        if (fill) await fillFrom(mnt, fill); // (beside mkfs's lost+found, as `from`)
        if (opts.mode !== undefined || (!from && !fill)) await chmod(mnt, opts.mode ?? 0o755);
        if (opts.uid !== undefined || opts.gid !== undefined) await chown(mnt, opts.uid ?? 0, opts.gid ?? 0);
      } finally {
        await detachImage(image, mnt);
        await rmdir(mnt).catch(() => undefined);
      }
    }
    await fsyncPath(image);
    await fsyncDir(dirname(data));
  }

  commitStaged(stageId: string, volume: string): Promise<void> {
    return this.dirs.commitStaged(stageId, volume);
  }

  async discardStaged(stageId: string): Promise<void> {
    if (this.spec.shared) {
      const mnt = join(this.spec.shared.attachDir, `${STAGE_MNT}${stageId}`);
      if (await mountedAt(mnt)) await execUmount(mnt);
      await rmdir(mnt).catch(() => undefined);
    }
    await this.dirs.discardStaged(stageId);
  }

  listStaged(): Promise<string[]> {
    return this.dirs.listStaged();
  }

  async checkMountable(volume: string): Promise<void> {
    await this.checkAvailable();
    try {
      // (on a share, with the share's deadline: a hung share fails the Mount instead of hanging it)
      await this.dirs.statFile(this.image(volume));
    } catch (err) {
      if (err instanceof FerryError) throw err;
      throw new FerryError('unavailable', `the image of volume ${volume} is missing from pool ${this.name} (${this.image(volume)}: ${errorMessage(err)}); check the pool's disk`);
    }
  }

  /** One more holder of the volume's filesystem: the first attaches the image and mounts it at mountpoint(). */
  attach(volume: string): Promise<void> {
    return this.lock.run(volume, async () => {
      const n = this.holders.get(volume) ?? 0;
      if (n === 0) {
        const image = this.image(volume);
        const data = this.mountpoint(volume);
        if (this.spec.shared) await makeDirs(data, 0o755);
        // still mounted from before a restart of ferryd: take it over if it is this image
        const there = await mountedAt(data);
        if (there) {
          const loops = await loopsOf(image);
          if (!loops.includes(there.source)) throw new FerryError('internal', `${data} has ${there.source} mounted, not the image of volume ${volume}; unmount it`);
        } else {
          await this.attachAs(image, data, await imageFsOf(image));
        }
      }
      this.holders.set(volume, n + 1);
    });
  }

  /**
   * Where a snapshot reads the volume. Attached (containers write to it) on a host filesystem with reflinks: the
   * filesystem is frozen for a reflink copy of the image (milliseconds), and the copy is mounted read-only to be
   * read at leisure: one instant of the volume, writers held only for the copy. Otherwise the volume's own
   * filesystem, attached for the time of the read (nobody writes to a volume no container has mounted).
   */
  async snapshotView(volume: string): Promise<{ dir: string; pointInTime: boolean; release(): Promise<void> }> {
    const image = this.image(volume);
    const data = this.mountpoint(volume);
    const view = await this.lock.run(volume, async () => {
      if ((this.holders.get(volume) ?? 0) === 0 || !this.reflinks) return undefined;
      return openView(this.volumeRoot(volume), image, data).catch((err) => {
        // (fsfreeze refused, the copy or its mount failed): the snapshot reads the live filesystem instead
        this.onFallback?.(volume, errorMessage(err));
        return undefined;
      });
    });
    if (view) return { ...view, pointInTime: true };
    await this.attach(volume);
    return { dir: data, pointInTime: false, release: () => this.detach(volume) };
  }

  /** Told when a snapshot could not make a frozen copy and reads the live filesystem instead (for the log). */
  onFallback: ((volume: string, why: string) => void) | undefined;
  /** Told when the blocks of a `full` image that became holes could not be reserved again at its attach (for the log). */
  onUnreserved: ((image: string, why: string) => void) | undefined;

  /**
   * Make an image as this pool's allocation says (image-fs.ts, makeImage). A host disk without room fails with
   * what the new image needs (a restore or a reset makes a whole new one), which the no_space error names.
   */
  private async newImage(image: string, bytes: number, fs: ImageFs): Promise<void> {
    try {
      await makeImage(image, bytes, fs, this.allocation);
    } catch (err) {
      if (isNoSpace(err) && err instanceof Error) withNeed(err, `a new image of ${sizeText(bytes)}${this.allocation === 'full' ? ', reserved whole,' : ''} is needed`);
      throw err;
    }
  }

  /** Attach an image as this pool's allocation says (image-fs.ts, attachImage). */
  private attachAs(image: string, dir: string, fs: ImageFs): Promise<void> {
    return attachImage(image, dir, fs, this.allocation, (err) => this.onUnreserved?.(image, errorMessage(err)));
  }

  async detachLeftover(volume: string): Promise<void> {
    if ((this.holders.get(volume) ?? 0) > 0) return;
    await detachImage(this.image(volume), this.mountpoint(volume));
  }

  /** One holder fewer: the last unmounts the filesystem and frees its loop device. */
  detach(volume: string): Promise<void> {
    return this.lock.run(volume, async () => {
      const n = this.holders.get(volume) ?? 0;
      if (n > 1) {
        this.holders.set(volume, n - 1);
        return;
      }
      this.holders.delete(volume);
      await detachImage(this.image(volume), this.mountpoint(volume));
      if (this.spec.shared) await rmdir(this.mountpoint(volume)).catch(() => undefined);
    });
  }

  /**
   * At start-up: the volumes Docker still has mounted on this host keep (or get back) their attach, one holder
   * each; every other image still mounted from before a crash of ferryd is detached.
   */
  async settle(inUse: ReadonlySet<string>): Promise<void> {
    if (this.spec.shared) {
      for (const volume of await settleAttachDir(this.spec.shared.attachDir, inUse)) this.holders.set(volume, 1);
      return;
    }
    for (const volume of await this.listLive()) {
      await this.discardRestore(volume).catch(() => undefined);
      await dropLeftoverViews(this.volumeRoot(volume)); // read-only copies of snapshots cut short by a crash
      if (inUse.has(volume)) {
        await this.attach(volume);
      } else if (await mountedAt(this.mountpoint(volume))) {
        await detachImage(this.image(volume), this.mountpoint(volume));
      }
    }
  }

  /**
   * A restore: a new image of the same size and filesystem beside the old one (`disk.img.new`, mounted at
   * `restore-mnt` to be filled), then renamed over it. A crash before the rename leaves the old image whole and a
   * new one that start-up deletes (settle); after it, the restored one.
   */
  async replaceData(volume: string, fill: (dir: string) => Promise<void>): Promise<void> {
    await this.lock.run(volume, async () => {
      if ((this.holders.get(volume) ?? 0) > 0 || (await mountedAt(this.mountpoint(volume)))) {
        throw new FerryError('in_use', `the image of volume ${volume} is attached; its data can be replaced only while nothing uses it`);
      }
      const image = this.image(volume);
      const fresh = `${image}.new`;
      const mnt = this.restoreMount(volume);
      await this.discardRestore(volume);
      const { bytes } = await imageSize(image);
      const fs = await imageFsOf(image);
      try {
        await this.newImage(fresh, bytes, fs);
        await mkdir(mnt, { mode: 0o700 });
        await this.attachAs(fresh, mnt, fs);
        try {
          await fillFrom(mnt, fill);
        } finally {
          await detachImage(fresh, mnt); // unmounting writes everything back to the image file
        }
        await fsyncPath(fresh);
      } catch (err) {
        await this.discardRestore(volume).catch(() => undefined);
        throw err;
      }
      await rename(fresh, image);
      await fsyncDir(this.volumeRoot(volume));
      await rmdir(mnt).catch(() => undefined);
    });
  }

  /** What a restore cut short left: its mount, its new image and the mount point (the old image is untouched). */
  private async discardRestore(volume: string): Promise<void> {
    const mnt = this.restoreMount(volume);
    const fresh = `${this.image(volume)}.new`;
    if (await mountedAt(mnt)) await detachImage(fresh, mnt);
    await rm(fresh, { force: true });
    await rmdir(mnt).catch(() => undefined);
  }

  /** Where a restore mounts the image it fills: beside the old one, or on this host for a shared pool. */
  private restoreMount(volume: string): string {
    return this.spec.shared ? join(this.spec.shared.attachDir, `${RESTORE_MNT}-${volume}`) : join(this.volumeRoot(volume), RESTORE_MNT);
  }

  /** Is the volume's filesystem mounted here now (by a holder of this ferryd)? */
  attached(volume: string): boolean {
    return (this.holders.get(volume) ?? 0) > 0;
  }

  async moveToTrash(volume: string, trashId: string): Promise<void> {
    if (this.attached(volume) || (await mountedAt(this.mountpoint(volume)))) {
      throw new FerryError('in_use', `the image of volume ${volume} is still mounted at ${this.mountpoint(volume)}; it cannot go to the trash until it is detached`);
    }
    await this.dirs.moveToTrash(volume, trashId);
  }

  restoreFromTrash(trashId: string, volume: string): Promise<void> {
    return this.dirs.restoreFromTrash(trashId, volume);
  }

  purgeTrash(trashId: string): Promise<void> {
    return this.dirs.purgeTrash(trashId);
  }

  hasLive(volume: string): Promise<boolean> {
    return this.dirs.hasLive(volume);
  }

  hasTrash(trashId: string): Promise<boolean> {
    return this.dirs.hasTrash(trashId);
  }

  listLive(): Promise<string[]> {
    return this.dirs.listLive();
  }

  listTrash(): Promise<string[]> {
    return this.dirs.listTrash();
  }

  /** The host's bytes the volume takes: its image's allocated blocks (the image is sparse) and its snapshots. */
  async usage(volume: string): Promise<number> {
    const { allocatedBytes } = await imageSize(this.image(volume)).catch(() => ({ allocatedBytes: 0 }));
    return allocatedBytes;
  }

  trashUsage(trashId: string): Promise<number> {
    return this.dirs.trashUsage(trashId);
  }

  async status(): Promise<PoolStatus> {
    const s = await this.dirs.status();
    return { ...s, kind: this.kind, snapshotMethod: this.snapshotMethod.name, sizes: this.sizeLimits.summary };
  }

  /** The size the image's filesystem has, and what it holds while it is mounted here. */
  private async readLimit(volume: string): Promise<LimitState> {
    const { bytes } = await imageSize(this.image(volume));
    const data = this.mountpoint(volume);
    const mounted = await mountedAt(data);
    return { enforcedBytes: bytes, usedBytes: mounted ? (await filesystemUse(data)).usedBytes : null };
  }

  /** `ferry volume resize`: grow the image and its filesystem (online while mounted); images never shrink. */
  private async grow(volume: string, bytes: number | undefined): Promise<void> {
    if (bytes === undefined) throw new FerryError('invalid', `volume ${volume} is a fixed-size image: it always has a size`);
    const image = this.image(volume);
    const data = this.mountpoint(volume);
    const fs = await imageFsOf(image);
    const { bytes: now } = await imageSize(image);
    if (bytes === now) return;
    if (bytes < now) {
      throw new FerryError('invalid', `volume ${volume} is an ${fs} image of ${sizeText(now)}: images grow only (${fs} cannot shrink ${fs === 'xfs' ? 'at all' : 'while mounted'}); to make it smaller, create a smaller volume and copy the data (a clone of a snapshot with -o size=)`);
    }
    await this.lock.run(volume, async () => {
      const mounted = (this.holders.get(volume) ?? 0) > 0;
      if (mounted || fs === 'ext4') return growImage(image, bytes, fs, mounted ? data : undefined, this.allocation);
      // xfs grows only mounted: attach it for the time of the grow
      if (this.spec.shared) await makeDirs(data, 0o755);
      await this.attachAs(image, data, fs);
      try {
        await growImage(image, bytes, fs, data, this.allocation);
      } finally {
        await detachImage(image, data);
      }
    });
  }
}
