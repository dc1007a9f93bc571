/** A shared image pool at start-up: what is still mounted in this host's attach directory from before, kept for Docker's mounts or unmounted. */
import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execUmount, mountedAt } from './image-fs.js';
import { makeDirs } from '../util/make-dirs.js';

/** Where a restore mounts the new image it fills (in the volume's directory; a shared pool's in attachDir). */
export const RESTORE_MNT = 'restore-mnt';
/** Where a shared pool's create mounts a staged image it fills (in attachDir). */
export const STAGE_MNT = '.stage-';

/**
 * Only this host's mounts are looked at (`dir`, the pool's ATTACHDIR), never the share's thousands of volumes.
 * One still mounted that Docker has mounted (`inUse`) keeps its attach (a restart of ferryd): returned, to be
 * held once; one Docker has not is unmounted; one Docker has mounted but that is not mounted here is attached
 * again by its next Mount, after the rwo lock (another host may have taken it over meanwhile). Staged creates
 * and restores cut short are unmounted.
 */
export async function settleAttachDir(dir: string, inUse: ReadonlySet<string>): Promise<string[]> {
  await makeDirs(dir, 0o755);
  const kept: string[] = [];
  for (const e of await readdir(dir)) {
    const mnt = join(dir, e);
    const mounted = await mountedAt(mnt);
    if (e.startsWith(STAGE_MNT) || e.startsWith(RESTORE_MNT)) {
      if (mounted) await execUmount(mnt);
      await rmdir(mnt).catch(() => undefined);
    } else if (mounted && inUse.has(e)) {
      kept.push(e);
    } else if (mounted) {
      await execUmount(mnt);
      await rmdir(mnt).catch(() => undefined);
    }
  }
  return kept;
}
