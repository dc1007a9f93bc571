/** One filesystem image on the host: made sparse (truncate + mkfs), loop-attached and mounted, filled, unmounted and detached, grown online or offline, and asked which filesystem it holds and whether (and where) it is attached. */
import { execFile } from 'node:child_process';
import { chmod, chown, open, readdir, readFile, rename, rmdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { execProgram } from '../util/exec.js';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';
import { mountOf } from '../util/mounts.js';
import { removeTree } from './trees/methods.js';
import { isNoSpace } from '../util/no-space.js';
import { sizeText } from '../util/size.js';

const MiB = 2 ** 20;

export type ImageFs = 'ext4' | 'xfs';
/** `full`: an image's blocks are reserved on the host's disk when it is made or grown (fallocate); `sparse`: as they are written. */
export type ImageAllocation = 'full' | 'sparse';
export const IMAGE_FILESYSTEMS: readonly ImageFs[] = ['ext4', 'xfs'];

/** The smallest image each filesystem makes (xfs refuses below 300 MiB). */
export const MIN_IMAGE_BYTES: Record<ImageFs, number> = { ext4: 2 ** 20, xfs: 300 * 2 ** 20 };

const MKFS_MS = 120_000;
const MOUNT_MS = 60_000;

/**
 * Make an image of `bytes` at `image` holding an empty `fs` filesystem. The file is new (fails if it exists). With
 * `full` allocation its blocks are reserved on the host's disk first (fallocate: unwritten extents, no data written),
 * so a full host disk refuses the create (ENOSPC) instead of failing the container's writes later; `sparse` images
 * take blocks as the filesystem writes them. mkfs does not discard them (`nodiscard`, `-K`). ext4 keeps no blocks
 * for root (`-m 0`): the user gets the size asked for.
 */
export async function makeImage(image: string, bytes: number, fs: ImageFs, allocate: ImageAllocation = 'sparse'): Promise<void> {
  const fh = await open(image, 'wx', 0o600);
  try {
    await fh.truncate(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (allocate === 'full') await reserve(image, bytes);
  if (fs === 'ext4') await execProgram('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', image], { timeoutMs: MKFS_MS });
  // reflink=1: copies inside the volume share blocks (cp --reflink); -K: do not discard the sparse file's blocks
  else await execProgram('mkfs.xfs', ['-q', '-f', '-K', '-m', 'reflink=1', image], { timeoutMs: MKFS_MS });
}

/** Is `dir` the mount point of a filesystem (and which device)? */
export async function mountedAt(dir: string): Promise<{ source: string; fsType: string } | undefined> {
  const m = await mountOf(dir);
  return m.mountPoint === dir ? { source: m.source, fsType: m.fsType } : undefined;
}

/** The loop devices `image` is attached to (`losetup -j`): more than one means it is attached twice. */
export async function loopsOf(image: string): Promise<string[]> {
  const out = await execProgram('losetup', ['-n', '-O', 'NAME', '-j', image], { timeoutMs: MOUNT_MS });
  return out.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** How long a loop device may take to clear itself after its filesystem was unmounted (seen: up to ~100 ms under load). */
const AUTOCLEAR_WAIT_MS = 10_000;

/** The image's loop devices, once none is left or `ms` passed (then those still there). */
async function loopsCleared(image: string, ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const loops = await loopsOf(image);
    if (loops.length === 0 || Date.now() >= deadline) return loops;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Attach `image` to a free loop device and mount it at `dir` (mount -o loop: the device is freed again when it
 * is unmounted). Refuses when the image is attached already anywhere on this host: one image, one attach.
 *
 * A `full` image keeps every block reserved: zeroing through the loop device punches holes in the image file,
 * which ext4's background initialisation of inode tables does at the first mounts after mkfs or a grow (seen:
 * 8 MiB of a 128 MiB image within 25 s) and so does an fstrim of the host. So its ext4 is mounted with
 * `noinit_itable` (the tables stay marked uninitialised, as mkfs left them), and holes found at attach are
 * reserved again first. A host disk without room for them does not stop the mount (the volume's data is all
 * there): `unreserved` is told, and writes into those blocks may fail while the disk stays full.
 */
export async function attachImage(image: string, dir: string, fs: ImageFs, allocate: ImageAllocation = 'sparse', unreserved?: (err: unknown) => void): Promise<void> {
  // a loop device set to clear itself is freed by the kernel shortly after the unmount returns, not at once
  const loops = await loopsCleared(image, AUTOCLEAR_WAIT_MS);
  if (loops.length > 0) {
    throw new FerryError(
      'in_use',
      `image ${image} is attached already (${loops.join(', ')}) but not mounted at ${dir}: another mount namespace may still hold its filesystem (a process that unshared its mounts while the volume was mounted); ferryd attaches an image once: find the holder (grep ${loops[0]} /proc/*/mountinfo) and let it end, or detach the image (umount, losetup -d) if nothing uses it`,
    );
  }
  if (allocate === 'full') await reserveHoles(image).catch((err: unknown) => unreserved?.(err));
  await execProgram('mount', ['-t', fs, '-o', allocate === 'full' && fs === 'ext4' ? 'loop,noinit_itable' : 'loop', image, dir], { timeoutMs: MOUNT_MS });
}

/** Reserve again the blocks of a `full` image that became holes; returns the bytes it had fewer than its size. */
export async function reserveHoles(image: string): Promise<number> {
  const { bytes, allocatedBytes } = await imageSize(image);
  if (allocatedBytes >= bytes) return 0;
  await reserve(image, bytes);
  return bytes - allocatedBytes;
}

/**
 * Unmount the image's filesystem at `dir` (which frees its loop device). Not lazily: a filesystem still in use
 * (a container Docker did not unmount) stays attached and this fails `in_use`, rather than leaving a hidden
 * mount that would be attached a second time later.
 */
export async function detachImage(image: string, dir: string): Promise<void> {
  if (await mountedAt(dir)) {
    try {
      await execProgram('umount', [dir], { timeoutMs: MOUNT_MS });
    } catch (err) {
      throw new FerryError('in_use', `could not unmount the image of ${dir}: ${errorMessage(err)}; it stays attached until nothing uses it`);
    }
    // the loop device clears itself after the unmount: wait for it, so that the next attach finds the image free
    await loopsCleared(image, AUTOCLEAR_WAIT_MS);
  }
}

/** The image's size (its filesystem's, as made or last grown) and the host blocks it takes. */
export async function imageSize(image: string): Promise<{ bytes: number; allocatedBytes: number }> {
  const st = await stat(image);
  return { bytes: st.size, allocatedBytes: st.blocks * 512 };
}

/** What the mounted filesystem at `dir` holds: used and total bytes (statfs), as `df` counts them. */
export async function filesystemUse(dir: string): Promise<{ usedBytes: number; totalBytes: number; freeBytes: number }> {
  const s = await statfs(dir);
  return { usedBytes: (s.blocks - s.bfree) * s.bsize, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

/**
 * Grow the image to `bytes` and its filesystem with it. Mounted at `dir`: online (the loop device learns the new
 * size, then resize2fs or xfs_growfs). Not mounted: ext4 is checked and resized as a file; xfs only grows mounted,
 * so the caller attaches it first.
 */
export async function growImage(image: string, bytes: number, fs: ImageFs, dir: string | undefined, allocate: ImageAllocation = 'sparse'): Promise<void> {
  if (dir && fs === 'ext4' && !(await hasCapability(CAP_SYS_RESOURCE))) {
    throw new FerryError(
      'unavailable',
      `an ext4 image grows while mounted only with CAP_SYS_RESOURCE (the kernel's online resize), which ferryd does not have here; stop the containers that use the volume and resize it then (offline), or use fs=xfs, which grows online`,
    );
  }
  if (!dir) {
    const held = await loopsCleared(image, AUTOCLEAR_WAIT_MS);
    if (held.length > 0) throw new FerryError('in_use', `image ${image} is still attached (${held.join(', ')}): its filesystem may be mounted in another mount namespace; it cannot be grown offline now`);
  }
  const fh = await open(image, 'r+');
  try {
    if ((await fh.stat()).size > bytes) throw new FerryError('invalid', `image ${image} is larger than ${bytes} bytes already; images grow only`);
    // the new blocks first: a host disk without room refuses the grow before anything changed
    if (allocate === 'full') await reserve(image, bytes);
    await fh.truncate(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (dir) {
    const loops = await loopsOf(image);
    if (loops.length !== 1) throw new FerryError('internal', `image ${image} is attached ${loops.length} times; cannot grow it online`);
    await execProgram('losetup', ['-c', loops[0]!], { timeoutMs: MOUNT_MS });
    if (fs === 'ext4') await execProgram('resize2fs', [loops[0]!], { timeoutMs: MKFS_MS });
    else await execProgram('xfs_growfs', [dir], { timeoutMs: MKFS_MS });
    return;
  }
  if (fs !== 'ext4') throw new FerryError('internal', 'an xfs image grows only while mounted');
  // resize2fs insists on a fresh check; e2fsck -p fixes what is safe and exits 1 when it fixed something
  await new Promise<void>((resolve, reject) =>
    execFile('e2fsck', ['-f', '-p', image], { timeout: MKFS_MS }, (err, _out, stderr) => {
      if (!err || err.code === 1) resolve();
      else reject(new FerryError('internal', `e2fsck of ${image} found what it cannot fix safely (exit ${String(err.code)}): ${stderr.trim().split('\n').slice(-3).join(' / ')}; check it by hand (e2fsck -f ${image})`));
    }),
  );
  await execProgram('resize2fs', [image], { timeoutMs: MKFS_MS });
}

/**
 * Reserve the first `bytes` of `image` on the host's disk (fallocate(1): unwritten extents, which read as zeros).
 * A disk without room fails with "No space left on device" (a no_space error to the caller); a filesystem that cannot
 * reserve (some NFS servers) is refused, naming the pool setting that does without.
 */
async function reserve(image: string, bytes: number): Promise<void> {
  try {
    await execProgram('fallocate', ['-l', String(bytes), image], { timeoutMs: MKFS_MS });
  } catch (err) {
    if (/not supported/i.test(errorMessage(err))) {
      throw new FerryError('invalid', `the filesystem of ${image} cannot reserve an image's space (fallocate: ${errorMessage(err)}); set allocate: sparse for this pool in ferryd's config (images then take space as they are written, and a full disk fails the containers' writes)`);
    }
    throw err;
  }
}

const CAP_SYS_RESOURCE = 24;

/** Does this process have the capability (its effective set, from /proc/self/status)? */
async function hasCapability(bit: number): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8');
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> BigInt(bit)) & 1n) === 1n;
}

/**
 * A point-in-time copy of a mounted image: its filesystem at `dir` is frozen (fsfreeze: flushed, writers held)
 * for the time of a reflink copy of the image file to `dest` (copy-on-write: milliseconds, whatever its size),
 * then thawed. Needs a host filesystem with reflinks (xfs with reflink=1, btrfs).
 */
export async function frozenCopy(image: string, dir: string, dest: string): Promise<void> {
  await execProgram('fsfreeze', ['--freeze', dir], { timeoutMs: MOUNT_MS });
  try {
    await execProgram('cp', ['--reflink=always', image, dest], { timeoutMs: MOUNT_MS });
  } finally {
    await execProgram('fsfreeze', ['--unfreeze', dir], { timeoutMs: MOUNT_MS });
  }
}

/**
 * Mount a copy of an image read-only at `dir` (its own loop device), for reading. The copy of a frozen filesystem
 * is clean, but its journal is not replayed (ext4 noload) and an xfs copy has its source's UUID (nouuid).
 */
export async function mountCopyReadOnly(image: string, dir: string, fs: ImageFs): Promise<void> {
  await execProgram('mount', ['-t', fs, '-o', fs === 'ext4' ? 'loop,ro,noload' : 'loop,ro,norecovery,nouuid', image, dir], { timeoutMs: MOUNT_MS });
}

/** Which filesystem an image holds, from its superblock's magic: xfs "XFSB" at 0, ext2/3/4 0xEF53 at 1080. */
export async function imageFsOf(image: string): Promise<ImageFs> {
  const fh = await open(image, 'r');
  try {
    const head = Buffer.alloc(1082);
    await fh.read(head, 0, head.length, 0);
    if (head.toString('latin1', 0, 4) === 'XFSB') return 'xfs';
    if (head.readUInt16LE(1080) === 0xef53) return 'ext4';
  } finally {
    await fh.close();
  }
  throw new FerryError('corrupt', `${image} holds no ${IMAGE_FILESYSTEMS.join(' or ')} filesystem that ferryd can mount`);
}

/**
 * Fill the mounted, empty filesystem at `data` with `from` (a clone's copy of a snapshot makes its target
 * directory): copied into a directory inside the image, then its entries moved up, so nothing crosses filesystems.
 */
export async function fillFrom(data: string, from: (dir: string) => Promise<void>): Promise<void> {
  const fill = join(data, '.ferry-fill');
  // mkfs.ext4 leaves lost+found: it is the filesystem's own, and a copy must not clash with it
  try {
    await from(fill);
  } catch (err) {
    // a full image, not a full pool (whose free bytes the caller would name): the data is larger than the image
    if (!isNoSpace(err)) throw err;
    const use = await filesystemUse(data).catch(() => undefined);
    if (!use || use.freeBytes > Math.max(MiB, use.totalBytes / 50)) throw err;
    throw new FerryError('no_space', `the new image's filesystem (${sizeText(use.totalBytes)} for files) filled up while the data was copied in: the data is larger than the size the volume was given; nothing was kept: ask for a larger size (-o size=)`, { where: 'image', freeBytes: use.freeBytes });
  }
  for (const entry of await readdir(fill)) {
    try {
      await rename(join(fill, entry), join(data, entry));
    } catch (err) {
      if (!(entry === 'lost+found' && (isErrno(err, 'ENOTEMPTY') || isErrno(err, 'EEXIST')))) throw err;
      await removeTree(join(fill, entry));
    }
  }
  const st = await stat(fill);
  await chmod(data, st.mode & 0o7777);
  await chown(data, st.uid, st.gid);
  await rmdir(fill);
}

/** Unmount what a create or restore cut short left mounted on this host (its loop device frees itself). */
export async function execUmount(dir: string): Promise<void> {
  await execProgram('umount', [dir], { timeoutMs: 60_000 });
}
