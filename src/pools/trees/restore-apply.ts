/** A restore in place, step 2: the journal of a staged restore, and its application to the live tree (idempotent: replayed at start-up after a crash). */
import { lstatSync, readFileSync, renameSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { pauseAt } from '../../util/test-pause.js';
import { setDirMeta } from './copy.js';
import type { AppliedCounts, RestoreApplyJob, RestorePlan } from './jobs.js';

/**
 * `restore.json` of an in-place restore: written (atomically, after the staged copies are on disk) before the
 * live tree is touched, removed after the plan was carried out and synced. `end` is written last: a file that
 * parses but lacks it is not ours.
 */
export interface RestoreJournal extends RestorePlan {
  v: 1;
  phase: 'apply';
  /** The snapshot restored. */
  snapshot: string;
  /** The staging directory's name, beside the live data. */
  stage: string;
  end: true;
}

/** The journal in `text`, or undefined when it is not a complete one. */
export function parseJournal(text: string): RestoreJournal | undefined {
  let j: Partial<RestoreJournal>;
  try {
    j = JSON.parse(text) as Partial<RestoreJournal>;
  } catch {
    return undefined;
  }
  const ok = j && j.v === 1 && j.phase === 'apply' && j.end === true && Array.isArray(j.remove) && Array.isArray(j.place) && Array.isArray(j.dirs) && typeof j.snapshot === 'string';
  return ok ? (j as RestoreJournal) : undefined;
}

/** lstat, undefined when the path is not there (also when a component of it is no longer a directory). */
function look(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Carry out the journal's plan on the live tree. Each step checks before it acts, so running it again after
 * any prefix of it ran gives the same end: a removal only removes what is still of the kind it removes (a
 * replay never removes what a first pass renamed there), a rename only runs while its source is in the stage.
 */
export async function applyRestore(job: RestoreApplyJob): Promise<AppliedCounts> {
  const j = parseJournal(readFileSync(job.journal, 'utf8'));
  if (!j) throw new Error(`${job.journal} is not a complete restore journal`);
  let removals = 0;
  for (const [rel, kind] of j.remove) {
    const p = `${job.live}/${rel}`;
    const st = look(p);
    if (!st) continue;
    if (kind === 'dir' && st.isDirectory()) rmSync(p, { recursive: true, force: true });
    else if (kind === 'other' && !st.isDirectory()) unlinkSync(p);
    else continue;
    removals++;
  }
  await pauseAt('restore-apply-removed');
  let renames = 0;
  const half = Math.floor(j.place.length / 2);
  for (const [i, rel] of j.place.entries()) {
    if (i === half) await pauseAt('restore-apply-half');
    const from = `${job.stage}/${rel}`;
    if (!look(from)) continue;
    renameSync(from, `${job.live}/${rel}`);
    renames++;
  }
  setDirMeta(job.live, j.dirs);
  return { removals, renames };
}
