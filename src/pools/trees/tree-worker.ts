/** The tree worker's entry: which jobs each of its threads answers (a serving worker, a one-job worker, a walk helper). */
/**
 * The file work of snapshots on pools without filesystem snapshots (hard-link pools: ext4, NFS; reflink
 * pools: xfs), in a worker thread so that tens of thousands of synchronous stat/link/mkdir calls never
 * stall ferryd's event loop. Three jobs (see manifest.ts for the two layouts):
 * - `build`: a snapshot of the live tree. Unchanged entries (same inode, ctime and size as the previous
 *   snapshot recorded) are referenced (delta) or hard-linked (full) from the snapshot holding their copy;
 *   the rest is copied by `cp -a` (modes, owners, times, xattrs, sparse files).
 * - `materialise`: a whole tree of a snapshot: copies (restores and clones: the live data never shares an
 *   inode with a snapshot) or hard links (a read-only view for backups).
 * - `relocate`: before a delta snapshot is deleted, what later snapshots still reference in it is
 *   hard-linked into the oldest of them, and their manifests are rewritten to say so.
 * - `restore-stage` and `restore-apply`: a restore in place (restore-stage.ts, restore-apply.ts): copies of
 *   what differs from the snapshot staged beside the live tree, then a journaled plan carried out on it.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { serveRequests } from '../../util/worker-channel.js';
import { walkHelper, walkUnits, type Seen, type WalkTask } from './walk.js';
import { build, keepManifests } from './build.js';
import { materialise } from './materialise.js';
import { relocate } from './relocate.js';
import { stageRestore } from './restore-stage.js';
import { applyRestore } from './restore-apply.js';
import type { TreeJob, TreeProgress, TreeWorkerRole } from './jobs.js';

if (!isMainThread) {
  const role = workerData as TreeWorkerRole;
  if (role === 'walk-helper') {
    serveRequests<WalkTask, Array<Seen[] | undefined>>((t) => {
      const out: Array<Seen[] | undefined> = [];
      walkUnits(t, out);
      return out;
    });
  } else if (role === 'serve' || role === 'job') {
    if (role === 'serve') {
      keepManifests();
      // start the walk helpers now: the first large snapshot does not wait for them
      for (let k = 0; k < Math.min(3, availableParallelism() - 1); k++) walkHelper(k);
    }
    // a build's progress goes to the caller before its answer; a serving worker gets one job at a time
    serveRequests<TreeJob, unknown, TreeProgress>((job, ctx) => {
      switch (job.op) {
        case 'build':
          return build(job, ctx.progress);
        case 'materialise':
          return materialise(job);
        case 'relocate':
          return relocate(job);
        case 'restore-stage':
          return stageRestore(job);
        case 'restore-apply':
          return applyRestore(job);
      }
    });
  }
}
