/** Restores in place on hard-link and reflink pools: stage what differs, journal the plan, apply it; and the finish of a journaled restore at start-up. */
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../util/atomic.js';
import { pauseAt } from '../../util/test-pause.js';
import { removeTree, runRestoreJob, type SnapshotMethodName, type StoredSnapshot } from './methods.js';
import { syncTree } from '../../util/atomic.js';
import { parseJournal, type RestoreJournal } from './restore-apply.js';
import type { AppliedCounts, RestoreStats } from './jobs.js';

export type { RestoreStats };

/** Where a restore in place stages its copies: beside the live data, on its filesystem. */
export const stagePath = (live: string) => `${live}.stage`;

/**
 * Step 1 of a restore of snapshot `src` into the live tree `live` in place: stage copies of what differs
 * (restore-stage.ts), make them durable, then write the journal `marker` (atomically: it is there whole or not
 * at all). Until the journal is written nothing of the live tree has changed; on any failure the stage (and a
 * journal whose write failed late) is removed and the error thrown: the live data is as it was.
 * Returns undefined (nothing done, nothing left) where a restore in place does not apply: methods other than
 * `hardlink` and `reflink`, and snapshots without a manifest that records directories (with the reason).
 */
export async function stageInPlace(method: SnapshotMethodName, src: StoredSnapshot, live: string, marker: string): Promise<{ stats: RestoreStats } | { fallback: string }> {
  if (method !== 'hardlink' && method !== 'reflink') return { fallback: `the ${method} method makes writable copies by itself` };
  // A journal left by a restore whose apply failed (ferryd not restarted since): finish it first. Its stage must
  // not be dropped while the journal that needs it is still the one a crash would replay.
  if ((await readMarkerKind(marker)) === 'in-place') await finishInPlace(live, marker);
  const stage = stagePath(live);
  await emptied.get(stage);
  await removeTree(stage);
  await mkdir(stage);
  try {
    const r = await runRestoreJob({ op: 'restore-stage', snaps: src.snaps, id: src.id, live, stage, reflink: method === 'reflink' ? 'always' : 'auto' });
    if ('fallback' in r) {
      await removeTree(stage);
      return r;
    }
    await pauseAt('restore-staged');
    const t0 = performance.now();
    const lap = (what: string) => (r.stats.timings[what] = Math.round(performance.now() - t0));
    await syncTree(stage);
    lap('sync stage');
    const journal: RestoreJournal = { v: 1, phase: 'apply', snapshot: src.id, stage: basename(stage), ...r.plan, end: true };
    await writeFileAtomic(marker, JSON.stringify(journal));
    lap('journal');
    return { stats: r.stats };
  } catch (err) {
    await unlink(marker).catch(() => undefined);
    await removeTree(stage).catch(() => undefined);
    throw err;
  }
}

/**
 * Step 2, and its replay at start-up: carry out the journal `marker` on `live` (restore-apply.ts, idempotent),
 * make the live tree durable, drop the journal, then the stage (by then only empty mirror directories).
 * A crash anywhere in here leaves the journal, and the next start finishes the restore.
 */
export async function finishInPlace(live: string, marker: string): Promise<AppliedCounts & { timings: Record<string, number> }> {
  await pauseAt('restore-journaled');
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (what: string) => (timings[what] = Math.round(performance.now() - t0));
  const r = await runRestoreJob({ op: 'restore-apply', live, stage: stagePath(live), journal: marker });
  lap('apply');
  await syncTree(live);
  lap('sync');
  await unlink(marker);
  await fsyncDir(dirname(marker));
  lap('journal removed');
  // What is left in the stage is its empty mirror directories: deleted after the answer (a next restore of the
  // volume waits for it; start-up deletes a stage without a journal)
  const stage = stagePath(live);
  const gone = removeTree(stage)
    .catch(() => undefined)
    .finally(() => emptied.get(stage) === gone && emptied.delete(stage));
  emptied.set(stage, gone);
  return { ...r, timings };
}

/** Stages being deleted after their restore finished, by path. */
const emptied = new Map<string, Promise<unknown>>();

/** What the restore marker at `path` is: the journal of a restore in place, a swap's mark, or undefined when it cannot be read whole. */
export async function readMarkerKind(path: string): Promise<'in-place' | 'swap' | undefined> {
  let text: string;
  let value: unknown;
  try {
    text = await readFile(path, 'utf8');
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  if ((value as { phase?: unknown }).phase === 'apply') return parseJournal(text) ? 'in-place' : undefined;
  return 'swap';
}
