/** The walk of a live tree: lstat of every entry, on several cores for a large volume (helper threads and a shared counter). */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { isUtf8 } from 'node:buffer';
import { lstatSync, readdirSync, unlinkSync, writeFileSync, type Dirent } from 'node:fs';
import { WorkerChannel } from '../../util/worker-channel.js';
import { builtUrl } from '../../util/built-files.js';
import type { TreeWorkerRole } from './jobs.js';

/** What the walk saw of one entry: a directory's metadata, or what tells whether a file changed. */
export type Seen =
  | [rel: string, dir: 1, mode: number, uid: number, gid: number, atimeNs: string, mtimeNs: string]
  | [rel: string, dir: 0, ino: number, ctimeNs: string, size: number, inodeKey: string, regular: boolean, racy: boolean];

/**
 * A file whose ctime is at or after the start of the walk, by the filesystem's own clock (the ctime of a
 * probe file made then; on NFS the server's clock), may be written again without its ctime moving (times
 * are stamped from a coarse clock), or have changed while it was copied: the manifest does not vouch for
 * it, so the next snapshot copies it again (git's "racy clean" entries). A margin for clocks that step.
 */
export const RACY_MARGIN_NS = 10_000_000n;

export function filesystemNow(dir: string, id: string): bigint {
  const probe = `${dir}/.tmp-${id}.clock`;
  writeFileSync(probe, '');
  try {
    return lstatSync(probe, { bigint: true }).ctimeNs;
  } finally {
    unlinkSync(probe);
  }
}

/**
 * lstat `rel` and everything below it into `out`, parents before children. The volume may be in use:
 * entries can vanish between readdir and lstat (crash-consistent, not paused).
 */
export function walkInto(live: string, rel: string, racyFrom: bigint, out: Seen[]): void {
  const e = see(live, rel, racyFrom);
  if (!e) return;
  out.push(e);
  if (e[1] !== 1) return;
  for (const name of list(live, rel)) walkInto(live, rel ? `${rel}/${name}` : name, racyFrom, out);
}

/** lstat one entry (undefined if it vanished; the root must exist). */
export function see(live: string, rel: string, racyFrom: bigint): Seen | undefined {
  const abs = rel ? `${live}/${rel}` : live;
  const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
  if (!st) {
    if (rel) return undefined;
    throw new Error(`${abs} does not exist`);
  }
  if (!st.isDirectory()) return [rel, 0, Number(st.ino), st.ctimeNs.toString(), Number(st.size), st.nlink > 1n ? `${st.dev}:${st.ino}` : '', st.isFile(), st.ctimeNs >= racyFrom];
  return [rel, 1, Number(st.mode), Number(st.uid), Number(st.gid), st.atimeNs.toString(), st.mtimeNs.toString()];
}

export function list(live: string, rel: string): string[];
export function list(live: string, rel: string, types: true): Dirent[];
export function list(live: string, rel: string, types?: true): string[] | Dirent[] {
  const abs = rel ? `${live}/${rel}` : live;
  let names: string[] | Dirent[];
  try {
    names = types ? readdirSync(abs, { withFileTypes: true }) : readdirSync(abs);
  } catch (err) {
    if (!rel || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return [];
  }
  // Names are read as UTF-8: one that is not would come back altered and look deleted. Refuse, loudly.
  if (names.some((n) => (typeof n === 'string' ? n : n.name).includes('\uFFFD'))) {
    for (const raw of readdirSync(abs, { encoding: 'buffer' })) {
      if (!isUtf8(raw)) throw new Error(`${abs} holds a file name that is not valid UTF-8 (${JSON.stringify(raw.toString('latin1'))}); snapshots cannot keep it: rename it (convmv can)`);
    }
  }
  return names;
}

export interface WalkTask {
  live: string;
  units: string[];
  racyFrom: bigint;
  /** Int32: the next unit to take. */
  counter: SharedArrayBuffer;
}

/** Take units off the shared counter and walk them, until none is left; each unit's entries by its index. */
export function walkUnits(t: WalkTask, out: Array<Seen[] | undefined>): void {
  const counter = new Int32Array(t.counter);
  for (let i; (i = Atomics.add(counter, 0, 1)) < t.units.length; ) {
    const mine: Seen[] = [];
    walkInto(t.live, t.units[i]!, t.racyFrom, mine);
    out[i] = mine;
  }
}

/** Volumes with fewer entries than this (by the previous snapshot) are walked by one thread. */
export const PARALLEL_WALK_MIN = 4000;

/** Walk helpers, kept between snapshots by a serving worker (starting a thread costs ~35 ms of CPU). */
const helpers: Array<WorkerChannel<WalkTask, Array<Seen[] | undefined>>> = [];
export function walkHelper(k: number): WorkerChannel<WalkTask, Array<Seen[] | undefined>> {
  // a helper that died fails the walk waiting for it, and is started again by the next walk
  if (!helpers[k] || helpers[k].dead) {
    const w = new Worker(builtUrl('pools/trees/tree-worker.js'), { workerData: 'walk-helper' satisfies TreeWorkerRole });
    helpers[k] = new WorkerChannel(w, 'walk helper', { unrefWhenIdle: true });
  }
  return helpers[k];
}

/**
 * The walk of the live tree, on several cores when the volume is large: this thread lists the top two
 * levels, helper threads and this one then take the subtrees below them off a shared counter, and the
 * result is put together in unit order, so an unchanged tree is always listed in the same order.
 * `meanwhile` runs while the helpers start (reading the previous manifest).
 */
export async function walkLive(live: string, parallel: boolean, racyFrom: bigint, meanwhile: () => void): Promise<Seen[]> {
  const n = parallel ? Math.min(3, availableParallelism() - 1) : 0;
  if (n < 1) {
    meanwhile();
    const out: Seen[] = [];
    walkInto(live, '', racyFrom, out);
    return out;
  }
  const top: Seen[] = [];
  const units: string[] = [];
  const expand = (rel: string, depth: number) => {
    const e = see(live, rel, racyFrom);
    if (!e) return;
    top.push(e);
    if (e[1] !== 1) return;
    for (const d of list(live, rel, true)) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory() && depth < 2) expand(r, depth + 1);
      else units.push(r);
    }
  };
  expand('', 0);
  const task: WalkTask = { live, units, racyFrom, counter: new SharedArrayBuffer(4) };
  const done = Array.from({ length: n }, (_, k) => walkHelper(k).request(task));
  const byUnit: Array<Seen[] | undefined> = new Array(units.length);
  try {
    meanwhile();
    walkUnits(task, byUnit);
  } catch (err) {
    Atomics.store(new Int32Array(task.counter), 0, units.length); // the helpers stop after their current unit
    await Promise.allSettled(done);
    throw err;
  }
  const results = await Promise.allSettled(done);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  for (const r of results) if (r.status === 'fulfilled') r.value.forEach((u, i) => u && (byUnit[i] = u));
  return top.concat(...byUnit.map((u) => u ?? []));
}
