/** Read-only views of rox volumes (a read-only bind mount of the data). */
import { rmdir } from 'node:fs/promises';
import { execProgram } from '../util/exec.js';
import { mountOf } from '../util/mounts.js';
import { makeDirs } from '../util/make-dirs.js';

/**
 * Read-only views for `access=rox` volumes. The plugin protocol cannot ask Docker for a read-only bind,
 * so ferryd gives Docker a path that is already a read-only bind mount of the data: whatever Docker
 * bind-mounts from it is read-only too. The view lives on the node (DATA_DIR/ro/NAME) while mounted.
 */
export async function ensureReadOnlyView(source: string, view: string): Promise<void> {
  await ensureView(source, view, true);
}

/**
 * A bind mount of a volume's data at `view` (read-only or not). Used for rox volumes, and for every volume
 * of a managed plugin (its propagatedMount/NAME: Docker finds only what lies there).
 */
export async function ensureView(source: string, view: string, readOnly: boolean): Promise<void> {
  await makeDirs(view, 0o700);
  if ((await mountOf(view)).mountPoint === view) return; // still there from before a restart of ferryd
  await execProgram('mount', ['--bind', source, view]);
  if (!readOnly) return;
  try {
    await execProgram('mount', ['-o', 'remount,bind,ro', view]);
  } catch (err) {
    await execProgram('umount', [view]).catch(() => undefined);
    throw err;
  }
}

export async function dropReadOnlyView(view: string): Promise<void> {
  if ((await mountOf(view)).mountPoint === view) await execProgram('umount', [view]);
  await rmdir(view).catch(() => undefined);
}
