/** A restore in place, step 1: compare the live tree with a snapshot's manifest and stage copies of what differs, with the plan that puts them in place. */
import { linkSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { holderOf, type DirEntry, type FileEntry, type Manifest } from './manifest.js';
import { manifestPath, readManifestSync } from './manifest-file.js';
import { copyFromSnapshot } from './copy.js';
import { walkLive, PARALLEL_WALK_MIN, type Seen } from './walk.js';
import type { RestorePlan, RestoreStageJob, RestoreStageResult } from './jobs.js';

const parentOf = (rel: string) => {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
};

/**
 * A live non-directory still holds what the snapshot recorded when it is the same inode with the same ctime and
 * size as the manifest says the live file had when the snapshot was taken: ctime moves on every write, chmod,
 * chown, rename and link change, and cannot be set by users (the test every snapshot build makes, manifest.ts).
 * A manifest entry that was "racy" then (its ctime '') never matches.
 */
function unchanged(l: Seen | undefined, e: FileEntry): boolean {
  return !!l && l[1] === 0 && e[2] !== '' && l[2] === e[1] && l[3] === e[2] && l[4] === e[3];
}

/** Does a live directory differ from the snapshot's in mode, owner or mtime (atime is not restored as such)? */
function dirDiffers(l: Seen | undefined, d: DirEntry): boolean {
  return !l || l[1] !== 1 || l[2] !== d[1] || l[3] !== d[2] || l[4] !== d[3] || l[6] !== d[5];
}

/**
 * The live entries by path, for the comparison with a manifest. A tree walked again lists its entries in the
 * order its snapshot recorded them (the same readdir order, parents first), so a look-up first tries the next
 * entry of its kind after the last one found, and builds an index of the paths of that kind only when that
 * misses. (Files come in the manifest's order; directories, which the parallel walk and the manifest list in
 * different orders, miss often: 802 of 3,692 on the snapshots bench's volume, whose directories are a
 * twentieth of its entries.)
 */
class LiveEntries {
  /** Entries the snapshot has at their path, with the same kind (directory or not). */
  readonly matched: Uint8Array;
  private readonly next: [files: number, dirs: number] = [0, 0];
  private readonly byPath: [files?: Map<string, number>, dirs?: Map<string, number>] = [];

  constructor(private readonly seen: Seen[]) {
    this.matched = new Uint8Array(seen.length);
  }

  /** The live entry at `rel` if it is of kind `dir` (1: a directory, 0: anything else), marked as matched. */
  match(rel: string, dir: 0 | 1): Seen | undefined {
    const seen = this.seen;
    let i = this.next[dir];
    while (i < seen.length && seen[i]![1] !== dir) i++;
    this.next[dir] = i; // the entries of the other kind skipped are never looked at again
    if (i >= seen.length || seen[i]![0] !== rel) {
      let index = this.byPath[dir];
      if (!index) {
        index = this.byPath[dir] = new Map();
        for (let k = 0; k < seen.length; k++) if (seen[k]![1] === dir) index.set(seen[k]![0], k);
      }
      i = index.get(rel) ?? -1;
      if (i < 0) return undefined;
    }
    this.next[dir] = i + 1;
    this.matched[i] = 1;
    return seen[i];
  }
}

/**
 * Walk the live tree, compare it with the manifest of snapshot `job.id`, and stage in `job.stage` (mirroring the
 * relative paths) fresh copies of every non-directory that differs (copied from the snapshot tree holding it:
 * never a link to it) and every directory the live tree lacks. Nothing in the live tree is touched. Hard links
 * inside the volume: a group is kept only when all its names are unchanged, else its first name is copied and
 * the others are linked to that copy in the stage.
 */
export async function stageRestore(job: RestoreStageJob): Promise<RestoreStageResult> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (what: string) => (timings[what] = Math.round(performance.now() - t0));
  const size = statSync(manifestPath(job.snaps, job.id), { throwIfNoEntry: false })?.size;
  if (size === undefined) return { fallback: 'the snapshot has no manifest' };
  // the manifest is read and parsed while the walk helpers walk (as a build reads the previous one); racy flags are not used here: 0n
  let manifest: Manifest | undefined;
  const seen = await walkLive(job.live, size / 50 >= PARALLEL_WALK_MIN, 0n, () => void (manifest = readManifestSync(job.snaps, job.id)));
  lap('walk');
  const m = manifest;
  if (!m) return { fallback: 'the snapshot has no manifest' };
  if (m.dirs[0]?.[0] !== '') return { fallback: 'the snapshot was taken before manifests recorded directories' };

  const live = new LiveEntries(seen);
  /** first name -> all names of a hard-link group */
  const groups = new Map<string, string[]>();
  for (const [first, other] of m.links) {
    let g = groups.get(first);
    if (!g) groups.set(first, (g = [first]));
    g.push(other);
  }

  const plan: RestorePlan = { remove: [], place: [], dirs: [] };
  // Directories the live tree lacks (or has as something else) are made in the stage; the top-most of each is placed.
  const fresh = new Set<string>();
  /** each of the snapshot's directories: the live one at its path, if any */
  const liveDirs: Array<Seen | undefined> = new Array(m.dirs.length);
  for (const [k, [rel]] of m.dirs.entries()) {
    const l = live.match(rel, 1);
    liveDirs[k] = l;
    if (!rel) continue;
    const parentFresh = fresh.size > 0 && fresh.has(parentOf(rel));
    if (!parentFresh && l) continue;
    fresh.add(rel);
    mkdirSync(`${job.stage}/${rel}`, { recursive: true });
    if (!parentFresh) plan.place.push(rel);
  }

  // Non-directories: keep the unchanged, copy the rest from the snapshot that holds them.
  const byHolder = new Map<string, string[]>();
  const links: Array<[string, string]> = [];
  let kept = 0;
  let copied = 0;
  let copiedBytes = 0;
  const underFresh = fresh.size ? (n: string) => fresh.has(parentOf(n)) : () => false;
  for (const e of m.files) {
    const rel = e[0];
    const group = groups.get(rel);
    if (!group) {
      if (!underFresh(rel) && unchanged(live.match(rel, 0), e)) {
        kept++;
        continue;
      }
    } else if (group.map((n) => live.match(n, 0)).every((l, i) => !underFresh(group[i]!) && unchanged(l, e))) {
      kept += group.length;
      continue;
    }
    const names = group ?? [rel];
    const h = holderOf(e, job.id);
    let list = byHolder.get(h);
    if (!list) byHolder.set(h, (list = []));
    list.push(rel);
    copied += names.length;
    copiedBytes += e[3];
    for (const n of names) if (!underFresh(n)) plan.place.push(n);
    for (const n of names.slice(1)) links.push([rel, n]);
  }
  // Live entries the snapshot lacks, or has with another type (directory vs not): the top-most of each subtree.
  const gone = new Set<string>();
  for (const [i, e] of seen.entries()) {
    const rel = e[0];
    if (!rel || live.matched[i]) continue;
    if (gone.size > 0 && gone.has(parentOf(rel))) {
      if (e[1] === 1) gone.add(rel);
      continue;
    }
    plan.remove.push([rel, e[1] === 1 ? 'dir' : 'other']);
    if (e[1] === 1) gone.add(rel);
  }
  lap('compare');

  for (const [h, rels] of byHolder) await copyFromSnapshot(job.snaps, job.id, h, rels, job.stage, job.reflink);
  for (const [first, other] of links) {
    mkdirSync(dirname(`${job.stage}/${other}`), { recursive: true });
    linkSync(`${job.stage}/${first}`, `${job.stage}/${other}`);
  }
  lap('copy');

  // Directories whose mode, owner or times must be set afterwards: the new ones, those that differ, and those
  // whose entries change (a rename or removal inside moves a directory's mtime). Parents before children.
  const touched = new Set<string>();
  for (const [rel] of plan.remove) touched.add(parentOf(rel));
  for (const rel of plan.place) touched.add(parentOf(rel));
  plan.dirs = m.dirs.filter((d, k) => fresh.has(d[0]) || touched.has(d[0]) || dirDiffers(liveDirs[k], d));
  return { plan, stats: { kept, copied, copiedBytes, removed: plan.remove.length, timings } };
}
