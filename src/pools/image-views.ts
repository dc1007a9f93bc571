/** A snapshot's point-in-time view of an attached image: a reflink copy made while the filesystem is frozen, mounted read-only beside it; and the views a crash left. */
import { mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { detachImage, frozenCopy, imageFsOf, mountCopyReadOnly } from './image-fs.js';

/** The frozen copy a snapshot reads (`.snap-view-ID.img`) and where it is mounted read-only (`.snap-view-ID`). */
const SNAP_VIEW = '.snap-view-';

/**
 * Copy `image` (mounted at `data`, containers writing to it) while its filesystem is frozen (milliseconds: a reflink
 * copy), and mount the copy read-only in `root`. On failure what was made is removed and the error thrown.
 */
export async function openView(root: string, image: string, data: string): Promise<{ dir: string; release(): Promise<void> }> {
  const id = randomBytes(4).toString('hex');
  const snapImage = join(root, `${SNAP_VIEW}${id}.img`);
  const mnt = join(root, `${SNAP_VIEW}${id}`);
  try {
    await frozenCopy(image, data, snapImage);
    await mkdir(mnt, { mode: 0o700 });
    await mountCopyReadOnly(snapImage, mnt, await imageFsOf(image));
  } catch (err) {
    await dropView(snapImage, mnt);
    throw err;
  }
  return { dir: mnt, release: () => dropView(snapImage, mnt) };
}

/** Views in a volume's directory `root` that a crash cut short: unmounted and deleted. */
export async function dropLeftoverViews(root: string): Promise<void> {
  for (const e of await readdir(root).catch(() => [] as string[])) {
    if (e.startsWith(SNAP_VIEW) && !e.endsWith('.img')) await dropView(join(root, `${e}.img`), join(root, e)).catch(() => undefined);
    else if (e.startsWith(SNAP_VIEW)) await rm(join(root, e), { force: true }).catch(() => undefined);
  }
}

/** Unmount and delete a snapshot's read-only copy of an image. */
async function dropView(snapImage: string, mnt: string): Promise<void> {
  await detachImage(snapImage, mnt);
  await rm(snapImage, { force: true });
  await rmdir(mnt).catch(() => undefined);
}
