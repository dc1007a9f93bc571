/** A snapshot of the live tree: unchanged entries referenced or hard-linked from the snapshot holding them, the rest copied; its manifest. */
import { linkSync, lstatSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { holderOf, type DirEntry, type FileEntry, type Manifest } from './manifest.js';
import { manifestPath, readManifestSync } from './manifest-file.js';
import { COPY_WIDTH, cpBatches, cpParallel, cpParents, setDirMeta, type OnBatch } from './copy.js';
import { filesystemNow, walkLive, PARALLEL_WALK_MIN, RACY_MARGIN_NS } from './walk.js';
import type { BuildJob, BuildResult, TreeProgress } from './jobs.js';

/**
 * The previous snapshot's files, in the order of the walk that recorded them (the walk lists an unchanged
 * tree in the same order every time), so a new walk is compared entry by entry without hashing paths;
 * a path out of step is looked up in a map built on first need.
 */
class Previous {
  private next = 0;
  private byPath?: Map<string, number>;
  constructor(
    readonly id: string,
    private readonly files: FileEntry[],
  ) {}

  get size(): number {
    return this.files.length;
  }

  /** The entry for `rel` and the snapshot holding its copy. */
  find(rel: string): [FileEntry, string] | undefined {
    let i = this.next;
    if (this.files[i]?.[0] !== rel) {
      this.byPath ??= new Map(this.files.map((e, k) => [e[0], k]));
      const k = this.byPath.get(rel);
      if (k === undefined) return undefined;
      i = k;
    }
    this.next = i + 1;
    const e = this.files[i]!;
    return [e, holderOf(e, this.id)];
  }

  rewind(): this {
    this.next = 0;
    this.byPath = undefined;
    return this;
  }
}

/**
 * The last manifest built per volume, kept by a serving worker so that the next snapshot need not read
 * and parse it again (~60,000 entries: ~70 ms). Valid while the file is the one written (same inode,
 * size and mtime: a relocation rewrites it under a new inode); bounded in entries.
 */
const cache = new Map<string, { key: string; prev: Previous }>();
const CACHE_MAX_ENTRIES = 500_000;
const fileKey = (path: string) => {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}` : undefined;
};
/** Set in a serving worker: it keeps the last manifest of each volume for the next build. */
let serving = false;
export function keepManifests(): void {
  serving = true;
}

function previousFiles(prev: { snaps: string; id: string }): Previous {
  const c = cache.get(prev.snaps);
  if (c && c.prev.id === prev.id && c.key === fileKey(manifestPath(prev.snaps, prev.id))) return c.prev.rewind();
  return new Previous(prev.id, readManifestSync(prev.snaps, prev.id)?.files ?? []);
}

function remember(snaps: string, manifestFile: string, prev: Previous): void {
  cache.delete(snaps); // re-inserted last: most recently used
  cache.set(snaps, { key: fileKey(manifestFile)!, prev });
  for (let total = [...cache.values()].reduce((a, c) => a + c.prev.size, 0); total > CACHE_MAX_ENTRIES && cache.size > 1; ) {
    const [oldest, c] = cache.entries().next().value!; // least recently built first
    cache.delete(oldest);
    total -= c.prev.size;
  }
}

/**
 * A reporter that passes on at most one report every 100 ms, and every change of phase. A report held back
 * (a newer one replaces it) is passed on when its 100 ms are up, just before the next phase's first, or at
 * `flush`: each phase's last state is seen even when the reports come in a burst (two `cp` finishing their
 * batches together, a walk done soon after its start), and none comes after the build's end.
 */
function throttled(report: (p: TreeProgress) => void): ((p: TreeProgress) => void) & { flush(): void } {
  let last = -Infinity;
  let phase: string | undefined;
  let held: { p: TreeProgress; timer: ReturnType<typeof setTimeout> } | undefined;
  const pass = (p: TreeProgress) => {
    clearTimeout(held?.timer);
    held = undefined;
    last = performance.now();
    phase = p.phase;
    report(p);
  };
  const flush = () => held && pass(held.p);
  return Object.assign(
    (p: TreeProgress) => {
      if (p.phase !== phase) flush();
      const wait = 100 - (performance.now() - last);
      if (p.phase !== phase || wait <= 0) return pass(p);
      clearTimeout(held?.timer);
      held = { p, timer: setTimeout(() => pass(p), wait) };
    },
    { flush },
  );
}

export async function build(job: BuildJob, report: (p: TreeProgress) => void = () => undefined): Promise<BuildResult> {
  const progress = throttled(report);
  progress({ phase: 'scan', filesDone: 0, bytesDone: 0 });
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (what: string) => (timings[what] = Math.round(performance.now() - t0));
  let prev: Previous = new Previous(job.id, []);
  const prevSize = job.prev ? (statSync(manifestPath(job.prev.snaps, job.prev.id), { throwIfNoEntry: false })?.size ?? 0) : 0;
  const racyFrom = filesystemNow(dirname(job.dest), job.id) - RACY_MARGIN_NS;
  const seen = await walkLive(job.live, prevSize / 50 >= PARALLEL_WALK_MIN, racyFrom, () => {
    if (job.prev) prev = previousFiles(job.prev);
  });
  lap('walk');
  progress({ phase: 'scan', filesDone: seen.reduce((n, e) => (e[1] === 1 ? n : n + 1), 0), bytesDone: 0 });

  const delta = job.layout === 'delta';
  const dirs: DirEntry[] = [];
  const files: FileEntry[] = [];
  const links: Array<[string, string]> = [];
  const toCopy: number[] = []; // indexes into files
  const reuse: number[] = [];
  const reusedFrom: string[] = []; // per reuse: the snapshot holding the copy
  const sameInode = new Map<string, string>(); // "dev:ino" -> first rel path
  const regularAt = new Set<number>(); // indexes into files of regular files to copy
  let copiedBytes = 0;
  for (const e of seen) {
    if (e[1] === 1) {
      dirs.push([e[0], e[2], e[3], e[4], e[5], e[6]]);
      continue;
    }
    const [rel, , ino, ctime, size, inodeKey, regular, racy] = e;
    if (inodeKey) {
      const first = sameInode.get(inodeKey);
      if (first !== undefined) {
        links.push([first, rel]);
        continue;
      }
      sameInode.set(inodeKey, rel);
    }
    const p = prev.find(rel);
    if (p && p[0][1] === ino && p[0][2] === ctime && p[0][3] === size) {
      reuse.push(files.length);
      files.push([rel, ino, ctime, size, delta ? p[1] : '']);
      reusedFrom.push(p[1]);
      continue;
    }
    if (regular) {
      copiedBytes += size;
      regularAt.add(files.length);
    }
    toCopy.push(files.length);
    files.push([rel, ino, racy ? '' : ctime, size, '']);
  }
  lap('compare');

  const vanished = new Set<string>();
  if (delta) {
    mkdirSync(job.dest);
  } else {
    for (const [rel] of dirs) mkdirSync(rel ? `${job.dest}/${rel}` : job.dest, { recursive: true });
    for (const [k, i] of reuse.entries()) {
      const e = files[i]!;
      try {
        linkSync(`${job.prev!.snaps}/${reusedFrom[k]}/${e[0]}`, `${job.dest}/${e[0]}`);
      } catch {
        toCopy.push(i); // the previous copy is gone or unusable: copy instead
        e[4] = '';
      }
    }
  }
  const copyOne = (rel: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        cpParents([rel], job.live, job.dest, job.reflink);
        return;
      } catch (err) {
        if (!lstatSync(`${job.live}/${rel}`, { throwIfNoEntry: false })) {
          vanished.add(rel); // deleted meanwhile
          return;
        }
        if (attempt >= 4) throw err; // replaced while being copied: retry, a few times
      }
    }
  };
  const writeManifest = (m: Manifest) => writeFileSync(job.manifestOut, JSON.stringify(m));
  const rels = toCopy.map((i) => files[i]![0]);
  const sizes = toCopy.map((i) => (regularAt.has(i) ? files[i]![3] : 0));
  const copying: TreeProgress = { phase: 'copy', filesDone: 0, filesTotal: rels.length, bytesDone: 0, bytesTotal: copiedBytes };
  progress({ ...copying });
  const onBatch: OnBatch = (n, b) => {
    copying.filesDone += n;
    copying.bytesDone += b;
    progress({ ...copying });
  };
  try {
    if (delta) {
      // cp runs in its own process: the manifest is written meanwhile, and written again if something vanished
      const copied = cpParallel(rels, job.live, job.dest, job.reflink, COPY_WIDTH, sizes, onBatch);
      writeManifest({ v: 2, layout: job.layout, dirs, files, links });
      lap('manifest');
      // Something in a batch changed under us: copy one by one, skipping what was deleted meanwhile.
      for (const batch of await copied) batch.forEach(copyOne);
    } else {
      cpBatches(rels, job.live, job.dest, job.reflink, (batch) => batch.forEach(copyOne), sizes, onBatch);
    }
  } finally {
    progress.flush(); // the copy's last count, before the next phase's report (never after it)
  }
  lap('copy');

  const keptFiles = vanished.size ? files.filter((e) => !vanished.has(e[0])) : files;
  const keptLinks = vanished.size ? links.filter(([first]) => !vanished.has(first)) : links;
  if (!delta) {
    for (const [first, other] of keptLinks) {
      try {
        linkSync(`${job.dest}/${first}`, `${job.dest}/${other}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    setDirMeta(job.dest, dirs);
  }
  if (!delta || vanished.size) {
    writeManifest({ v: 2, layout: job.layout, dirs, files: keptFiles, links: keptLinks });
    lap('manifest');
  }
  if (serving) remember(dirname(job.manifestOut), job.manifestOut, new Previous(job.id, keptFiles));
  return { files: keptFiles.length + keptLinks.length, linked: reuse.length, copied: toCopy.length - vanished.size, copiedBytes, timings };
}
