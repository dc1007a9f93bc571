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
 */
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { isUtf8 } from 'node:buffer';
import { lstatSync, statSync, readdirSync, mkdirSync, linkSync, unlinkSync, chownSync, chmodSync, utimesSync, writeFileSync, readFileSync, existsSync, openSync, fsyncSync, closeSync, renameSync, type Dirent } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { WorkerChannel, serveRequests } from '../../util/worker-channel.js';
import { holderOf, parseManifest, type DirEntry, type FileEntry, type Manifest } from './manifest.js';

export type Reflink = 'always' | 'auto';

export interface BuildJob {
  op: 'build';
  /** The new snapshot's id (what its manifest's '' holder means). */
  id: string;
  layout: Manifest['layout'];
  /** `always` for reflink pools (fail rather than copy data), `auto` elsewhere. */
  reflink: Reflink;
  live: string;
  dest: string;
  manifestOut: string;
  /** The snapshots directory and the previous snapshot's id, if it has a manifest. */
  prev?: { snaps: string; id: string };
}
export interface BuildResult {
  files: number;
  linked: number;
  copied: number;
  copiedBytes: number;
  /** ms since the start, after each phase (for the log). */
  timings: Record<string, number>;
}

/** How far a build got, reported as it goes (a snapshot job's progress): the walk, then the copies of what changed. */
export interface TreeProgress {
  phase: 'scan' | 'copy';
  /** Entries seen (scan) or copied (copy); the total is known once the walk is done. */
  filesDone: number;
  filesTotal?: number;
  /** Bytes of regular files copied, of those to copy. */
  bytesDone: number;
  bytesTotal?: number;
}

export interface MaterialiseJob {
  op: 'materialise';
  snaps: string;
  id: string;
  dest: string;
  mode: 'copy' | 'link';
  reflink: Reflink;
}

export interface RelocateJob {
  op: 'relocate';
  snaps: string;
  id: string;
  /** The snapshots made after `id`, oldest first (only they can reference it). */
  later: string[];
}
export interface RelocateResult {
  moved: number;
  rewritten: number;
}

export type TreeJob = BuildJob | MaterialiseJob | RelocateJob;

const manifestPath = (snaps: string, id: string) => `${snaps}/${id}.manifest.json`;

/** The manifest of snapshot `id`, or undefined for a snapshot without one (btrfs; a complete tree). */
export function readManifestSync(snaps: string, id: string): Manifest | undefined {
  let text: string;
  try {
    text = readFileSync(manifestPath(snaps, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseManifest(text);
}

function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const d = openSync(dirname(path), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

/** A batch of at most this many bytes of data (unless one file is larger): progress moves at least this often. */
const BATCH_BYTES = 64 * 1024 * 1024;

/** Paths in batches that fit on a command line (and hold at most BATCH_BYTES of `sizes`), with their bytes. */
function* batches(rels: string[], sizes?: number[]): Generator<{ batch: string[]; bytes: number }> {
  for (let i = 0; i < rels.length; ) {
    const batch: string[] = [];
    let bytes = 0;
    for (let len = 0; i < rels.length && len < 100_000 && (bytes < BATCH_BYTES || batch.length === 0); i++) {
      batch.push(rels[i]!);
      len += rels[i]!.length + 1;
      bytes += sizes?.[i] ?? 0;
    }
    yield { batch, bytes };
  }
}

/** Told after each batch of copies: how many paths and bytes it held. */
type OnBatch = (files: number, bytes: number) => void;

/** `cp -a` of paths relative to `cwd` into `dest`, keeping them relative. */
const cpArgs = (rels: string[], dest: string, reflink: Reflink) => ['-a', `--reflink=${reflink}`, '--parents', '-t', dest, '--', ...rels];

function cpParents(rels: string[], cwd: string, dest: string, reflink: Reflink): void {
  execFileSync('cp', cpArgs(rels, dest, reflink), { cwd, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
}

/** cpParents in batches; `onFailure` gets a batch that failed (something in it changed meanwhile). */
function cpBatches(rels: string[], cwd: string, dest: string, reflink: Reflink, onFailure: (batch: string[]) => void, sizes?: number[], onBatch?: OnBatch): void {
  for (const { batch, bytes } of batches(rels, sizes)) {
    try {
      cpParents(batch, cwd, dest, reflink);
    } catch {
      onFailure(batch);
    }
    onBatch?.(batch.length, bytes);
  }
}

/** The same without blocking this thread (so that it can write the manifest meanwhile); resolves to the batches that failed. */
async function cpBatchesAsync(rels: string[], cwd: string, dest: string, reflink: Reflink, sizes?: number[], onBatch?: OnBatch): Promise<string[][]> {
  const failed: string[][] = [];
  for (const { batch, bytes } of batches(rels, sizes)) {
    await new Promise<void>((resolve) =>
      execFile('cp', cpArgs(batch, dest, reflink), { cwd, maxBuffer: 16 * 1024 * 1024 }, (err) => {
        if (err) failed.push(batch);
        resolve();
      }),
    );
    onBatch?.(batch.length, bytes);
  }
  return failed;
}


function setDirMeta(dest: string, dirs: DirEntry[]): void {
  // deepest first, after everything inside was made, so that adding entries does not change their times again
  for (let i = dirs.length - 1; i >= 0; i--) {
    const [rel, mode, uid, gid, atimeNs, mtimeNs] = dirs[i]!;
    const p = rel ? `${dest}/${rel}` : dest;
    if (rel && !existsSync(p)) continue;
    chownSync(p, uid, gid);
    chmodSync(p, mode & 0o7777);
    utimesSync(p, Number(atimeNs) / 1e9, Number(mtimeNs) / 1e9);
  }
}

// ---- build ----------------------------------------------------------------------------------------

/** What the walk saw of one entry: a directory's metadata, or what tells whether a file changed. */
type Seen =
  | [rel: string, dir: 1, mode: number, uid: number, gid: number, atimeNs: string, mtimeNs: string]
  | [rel: string, dir: 0, ino: number, ctimeNs: string, size: number, inodeKey: string, regular: boolean, racy: boolean];

/**
 * A file whose ctime is at or after the start of the walk, by the filesystem's own clock (the ctime of a
 * probe file made then; on NFS the server's clock), may be written again without its ctime moving (times
 * are stamped from a coarse clock), or have changed while it was copied: the manifest does not vouch for
 * it, so the next snapshot copies it again (git's "racy clean" entries). A margin for clocks that step.
 */
const RACY_MARGIN_NS = 10_000_000n;

function filesystemNow(dir: string, id: string): bigint {
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
function walkInto(live: string, rel: string, racyFrom: bigint, out: Seen[]): void {
  const e = see(live, rel, racyFrom);
  if (!e) return;
  out.push(e);
  if (e[1] !== 1) return;
  for (const name of list(live, rel)) walkInto(live, rel ? `${rel}/${name}` : name, racyFrom, out);
}

/** lstat one entry (undefined if it vanished; the root must exist). */
function see(live: string, rel: string, racyFrom: bigint): Seen | undefined {
  const abs = rel ? `${live}/${rel}` : live;
  const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
  if (!st) {
    if (rel) return undefined;
    throw new Error(`${abs} does not exist`);
  }
  if (!st.isDirectory()) return [rel, 0, Number(st.ino), st.ctimeNs.toString(), Number(st.size), st.nlink > 1n ? `${st.dev}:${st.ino}` : '', st.isFile(), st.ctimeNs >= racyFrom];
  return [rel, 1, Number(st.mode), Number(st.uid), Number(st.gid), st.atimeNs.toString(), st.mtimeNs.toString()];
}

function list(live: string, rel: string): string[];
function list(live: string, rel: string, types: true): Dirent[];
function list(live: string, rel: string, types?: true): string[] | Dirent[] {
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

interface WalkTask {
  live: string;
  units: string[];
  racyFrom: bigint;
  /** Int32: the next unit to take. */
  counter: SharedArrayBuffer;
}

/** Take units off the shared counter and walk them, until none is left; each unit's entries by its index. */
function walkUnits(t: WalkTask, out: Array<Seen[] | undefined>): void {
  const counter = new Int32Array(t.counter);
  for (let i; (i = Atomics.add(counter, 0, 1)) < t.units.length; ) {
    const mine: Seen[] = [];
    walkInto(t.live, t.units[i]!, t.racyFrom, mine);
    out[i] = mine;
  }
}

/** Volumes with fewer entries than this (by the previous snapshot) are walked by one thread. */
const PARALLEL_WALK_MIN = 4000;

/** Walk helpers, kept between snapshots by a serving worker (starting a thread costs ~35 ms of CPU). */
const helpers: Array<WorkerChannel<WalkTask, Array<Seen[] | undefined>>> = [];
function walkHelper(k: number): WorkerChannel<WalkTask, Array<Seen[] | undefined>> {
  // a helper that died fails the walk waiting for it, and is started again by the next walk
  if (!helpers[k] || helpers[k].dead) {
    const w = new Worker(new URL(import.meta.url), { workerData: 'walk-helper' satisfies TreeWorkerRole });
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
async function walkLive(live: string, parallel: boolean, racyFrom: bigint, meanwhile: () => void): Promise<Seen[]> {
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
let serving = false;

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

/** A reporter that passes on at most one report every 250 ms, and every change of phase. */
function throttled(report: (p: TreeProgress) => void): (p: TreeProgress) => void {
  let last = -Infinity;
  let phase: string | undefined;
  return (p) => {
    const now = performance.now();
    if (p.phase === phase && now - last < 250) return;
    last = now;
    phase = p.phase;
    report(p);
  };
}

async function build(job: BuildJob, report: (p: TreeProgress) => void = () => undefined): Promise<BuildResult> {
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
  if (delta) {
    // cp runs in its own process: the manifest is written meanwhile, and written again if something vanished
    const copied = cpBatchesAsync(rels, job.live, job.dest, job.reflink, sizes, onBatch);
    writeManifest({ v: 2, layout: job.layout, dirs, files, links });
    lap('manifest');
    // Something in a batch changed under us: copy one by one, skipping what was deleted meanwhile.
    for (const batch of await copied) batch.forEach(copyOne);
  } else {
    cpBatches(rels, job.live, job.dest, job.reflink, (batch) => batch.forEach(copyOne), sizes, onBatch);
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

// ---- materialise ----------------------------------------------------------------------------------

function materialise(job: MaterialiseJob): void {
  const m = readManifestSync(job.snaps, job.id);
  const tree = `${job.snaps}/${job.id}`;
  if (!m || m.layout === 'full') {
    if (job.mode === 'link') throw new Error(`snapshot ${job.id} is a complete tree: read it in place`);
    mkdirSync(job.dest);
    execFileSync('cp', ['-a', `--reflink=${job.reflink}`, '--', `${tree}/.`, `${job.dest}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
    return;
  }
  mkdirSync(job.dest);
  for (const [rel] of m.dirs) if (rel) mkdirSync(`${job.dest}/${rel}`);
  if (job.mode === 'link') {
    for (const e of m.files) linkSync(`${job.snaps}/${holderOf(e, job.id)}/${e[0]}`, `${job.dest}/${e[0]}`);
  } else {
    const byHolder = new Map<string, string[]>();
    for (const e of m.files) {
      const h = holderOf(e, job.id);
      let list = byHolder.get(h);
      if (!list) byHolder.set(h, (list = []));
      list.push(e[0]);
    }
    for (const [h, rels] of byHolder) {
      cpBatches(rels, `${job.snaps}/${h}`, job.dest, job.reflink, (batch) => {
        // report the first path that cannot be copied, with cp's own words
        for (const rel of batch) {
          try {
            cpParents([rel], `${job.snaps}/${h}`, job.dest, job.reflink);
          } catch (err) {
            const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
            throw new Error(`cannot copy ${rel} of snapshot ${job.id} (held by snapshot ${h}): ${why}`);
          }
        }
      });
    }
  }
  for (const [first, other] of m.links) linkSync(`${job.dest}/${first}`, `${job.dest}/${other}`);
  setDirMeta(job.dest, m.dirs);
}

// ---- relocate -------------------------------------------------------------------------------------

function relocate(job: RelocateJob): RelocateResult {
  const later: Array<[string, Manifest]> = [];
  for (const id of job.later) {
    const m = readManifestSync(job.snaps, id);
    if (m?.layout === 'delta') later.push([id, m]);
  }
  // every reference to (job.id, rel) is to the same file: its new holder is the oldest snapshot using it
  const newHolder = new Map<string, string>();
  for (const [id, m] of later) for (const e of m.files) if (holderOf(e, id) === job.id && !newHolder.has(e[0])) newHolder.set(e[0], id);
  for (const [rel, h] of newHolder) {
    const from = `${job.snaps}/${job.id}/${rel}`;
    const to = `${job.snaps}/${h}/${rel}`;
    mkdirSync(dirname(to), { recursive: true });
    try {
      linkSync(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // left by an interrupted relocation: it is this very file, or something to replace
      if (lstatSync(from).ino !== lstatSync(to).ino) {
        unlinkSync(to);
        linkSync(from, to);
      }
    }
  }
  if (newHolder.size) execFileSync('sync', ['-f', job.snaps]);
  let rewritten = 0;
  for (const [id, m] of later) {
    let changed = false;
    for (const e of m.files) {
      if (holderOf(e, id) !== job.id) continue;
      const h = newHolder.get(e[0])!;
      e[4] = h === id ? '' : h;
      changed = true;
    }
    if (changed) {
      writeAtomicSync(manifestPath(job.snaps, id), JSON.stringify(m));
      rewritten++;
    }
  }
  return { moved: newHolder.size, rewritten };
}

/**
 * What a thread of this file does (its workerData): `serve` answers tree jobs one after another for
 * ferryd's life (keeping manifests and walk helpers), `job` answers one, `walk-helper` walks for a build.
 */
export type TreeWorkerRole = 'serve' | 'job' | 'walk-helper';

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
      serving = true;
      // start the walk helpers now: the first large snapshot does not wait for them
      for (let k = 0; k < Math.min(3, availableParallelism() - 1); k++) walkHelper(k);
    }
    // a build's progress goes to the caller before its answer; a serving worker gets one job at a time
    serveRequests<TreeJob, unknown, TreeProgress>((job, ctx) => (job.op === 'build' ? build(job, ctx.progress) : job.op === 'materialise' ? materialise(job) : relocate(job)));
  }
}
