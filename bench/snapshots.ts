/**
 * Snapshots: ferry's snapshot, restore and clone against the peers' methods — Convoy-style `tar czf` and
 * dvol-style `cp -a` — on the same ~1 GiB, ~60,000-file volume, in one run, on an ext4 pool and a btrfs pool
 * (each a ~4 GiB loop image made here and destroyed at the end), and with --xfs on an xfs (reflink) pool too.
 *
 * Per pool: a real ferryd whose data dir is on the loop filesystem; `ferry volume create bench`; the data
 * set written straight into the volume's data dir (~200 MiB of random data in files of mixed sizes, copies
 * of /usr/share, filler files up to ~60,000 files / ~1 GiB); then, each step after `sync` and measured with
 * the pool filesystem's df-used bytes before and after (after `sync`, and `btrfs filesystem sync` on btrfs):
 *   1. snapshot 1 (`ferry --json snapshot create`); tar czf and cp -a of the volume (peers, full);
 *   2. rewrite ~1% of the files (~10 MiB, spread over the tree); snapshot 2; tar czf and cp -a again;
 *   3. snapshot 3 with nothing changed, through the API socket (no CLI process);
 *   4. hard-link pools: 3 more rounds of (1% change, API snapshot, cp -a), and the walk every snapshot
 *      makes (lstat, readdir; and for comparison mkdir and link() as hard-link trees did), each timed alone;
 *   5. `ferry snapshot restore bench <snapshot 1>`; hard-link pools: 3 more rounds of (1% change, restore to
 *      snapshot 1 through the API socket, cp -a), interleaved; `ferry volume create clone -o from=bench@<snapshot 1>`;
 *      `ferry snapshot rm bench <snapshot 1>` (later snapshots still use its files).
 * The page cache is warm for every step (the data set was just written; caches are never dropped).
 * Prints a markdown report and writes it to bench/results/snapshots-YYYY-MM-DD.md.
 *   npm run build && node dist/bench/snapshots.js [--xfs] [--ext4-only] [--no-write] [--tag NAME]
 * (--ext4-only: the ext4 pool alone; --tag NAME: the report is written as snapshots-YYYY-MM-DD-NAME.md)
 * Needs root, mkfs.ext4, mkfs.btrfs and btrfs (mkfs.xfs with --xfs), GNU tar, gzip and cp.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFerryd, run, unixRequest, ROOT, FERRY_BIN, type Ferryd } from '../test/helpers/ferryd.js';
import { makeLoopFs, loopFsPrerequisites, type FsKind, type LoopFs } from '../test/helpers/loopfs.js';
import { median, fmtMs, prng, listFiles, onInterrupt, reporter } from './lib.js';

const args = process.argv.slice(2);
const tagAt = args.indexOf('--tag');
const TAG = tagAt >= 0 ? args.splice(tagAt, 2)[1] : undefined;
const argv = new Set(args);
for (const a of argv) {
  if ((a !== '--xfs' && a !== '--no-write' && a !== '--ext4-only') || (tagAt >= 0 && !/^[\w.-]+$/.test(TAG ?? ''))) {
    console.error(`usage: node dist/bench/snapshots.js [--xfs] [--ext4-only] [--no-write] [--tag NAME]\nunknown argument ${JSON.stringify(a)}`);
    process.exit(2);
  }
}
const KINDS: FsKind[] = argv.has('--ext4-only') ? ['ext4'] : ['ext4', 'btrfs', ...(argv.has('--xfs') ? (['xfs'] as const) : [])];
const POOL_MIB = 4096;
const MiB = 1024 * 1024;
const TARGET_FILES = 60_000;
const TARGET_BYTES = 1024 * MiB;
const RANDOM_BYTES = 200 * MiB;
const CHANGE_FRACTION = 0.01;
const CHANGE_BYTES = 10 * MiB;
const SHARE = '/usr/share';
/** hard-link pools: more (1% change, snapshot, cp -a) rounds after snapshot 3, as single samples vary by ±30% here */
const REPEATS = 3;
const VOL = 'bench';

const missing = [...new Set(KINDS.flatMap((k) => loopFsPrerequisites(k)))];
for (const tool of ['tar', 'gzip', 'cp', 'du', ...(KINDS.includes('btrfs') ? ['btrfs'] : [])]) {
  if (!['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((d) => existsSync(join(d, tool)))) missing.push(tool);
}
if (missing.length) {
  console.error(`bench/snapshots: missing prerequisites: ${missing.join(', ')}`);
  process.exit(1);
}

const t0Run = performance.now();
const progress = (msg: string) => process.stderr.write(`[bench/snapshots +${((performance.now() - t0Run) / 1000).toFixed(0)}s] ${msg}\n`);
const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
};
/** Run a program; throw with its stderr when it fails. */
async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}
async function cli(f: Ferryd, ...args: string[]): Promise<{ ms: number; json: any }> {
  const t = performance.now();
  const r = await f.cli('--json', ...args);
  const ms = performance.now() - t;
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return { ms, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined };
}

const fmtT = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 100 ? `${ms.toFixed(0)} ms` : fmtMs(ms).replace('.00 ms', ' ms'));
const fmtB = (b: number) => {
  const s = b < 0 ? '−' : '';
  const a = Math.abs(b);
  return a >= 1024 * MiB ? `${s}${(a / 1024 / MiB).toFixed(2)} GiB` : a >= MiB ? `${s}${(a / MiB).toFixed(1)} MiB` : a >= 1024 ? `${s}${(a / 1024).toFixed(0)} KiB` : `${s}${a} B`;
};
/** this ÷ peer, 3 significant digits. */
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? (a / b).toPrecision(3) : '—');
/** Space ratios: a change under 1 MiB either way is noise of the filesystem's own metadata. */
const spaceRatio = (a: number, b: number) => (Math.abs(a) < MiB ? '≈0' : ratio(a, b));
const times = (a: number, b: number) => (a / b >= 1 ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×` : `${(a / b).toFixed(2)}×`);

// ---- the pool filesystem: sync and used bytes ------------------------------------------------------

async function settle(kind: FsKind, mnt: string): Promise<number> {
  const t = performance.now();
  await must('sync', []);
  if (kind === 'btrfs') await must('btrfs', ['filesystem', 'sync', mnt]);
  return performance.now() - t;
}
async function usedBytes(mnt: string): Promise<number> {
  const s = await statfs(mnt);
  return (s.blocks - s.bfree) * s.bsize;
}
/**
 * df-used once it has settled: xfs frees the blocks of unlinked files in the background (deferred inode
 * inactivation), after `sync` returns — a 600 MiB archive deleted before a step was freed during the next
 * one and made it look 580 MiB smaller. So: sync, then read until two readings 250 ms apart agree within
 * 256 KiB (at most 30 s).
 */
async function stableUsed(kind: FsKind, mnt: string): Promise<number> {
  await settle(kind, mnt);
  let prev = await usedBytes(mnt);
  let agreed = 0;
  for (const deadline = performance.now() + 30_000; performance.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 250));
    await settle(kind, mnt);
    const u = await usedBytes(mnt);
    agreed = Math.abs(u - prev) < 256 * 1024 ? agreed + 1 : 0;
    prev = u;
    if (agreed >= 2) break;
  }
  return prev;
}

// ---- data set -------------------------------------------------------------------------------------


interface TreeCount {
  files: number; // regular files
  symlinks: number;
  dirs: number;
  bytes: number; // st.size of regular files and symlinks
}
function countTree(p: string, acc: TreeCount = { files: 0, symlinks: 0, dirs: 0, bytes: 0 }): TreeCount {
  const st = lstatSync(p);
  if (st.isDirectory()) {
    acc.dirs++;
    for (const e of readdirSync(p)) countTree(join(p, e), acc);
  } else {
    if (st.isFile()) acc.files++;
    else acc.symlinks++;
    acc.bytes += st.size;
  }
  return acc;
}
const nonDirs = (c: TreeCount) => c.files + c.symlinks;

interface Dataset {
  randomFiles: number;
  randomBytes: number;
  shareCopies: string[];
  fillerFiles: number;
  fillerBytes: number;
  count: TreeCount;
  duBytes: number;
}

async function makeDataset(data: string, share: Array<{ name: string; c: TreeCount }>, shareTotal: TreeCount): Promise<Dataset> {
  const rnd = prng(20261127);
  // ~200 MiB of random (incompressible) data: 85% small (1-64 KiB), 13% medium (64 KiB-2 MiB), 2% large (2-16 MiB)
  let randomFiles = 0;
  let randomTotal = 0;
  while (randomTotal < RANDOM_BYTES) {
    const r = rnd();
    let size = r < 0.85 ? 1024 + Math.floor(rnd() * 63 * 1024) : r < 0.98 ? 64 * 1024 + Math.floor(rnd() * (2 * MiB - 64 * 1024)) : 2 * MiB + Math.floor(rnd() * 14 * MiB);
    size = Math.max(1, Math.min(size, RANDOM_BYTES - randomTotal));
    const dir = join(data, 'random', `d${String(randomFiles % 50).padStart(2, '0')}`, `e${randomFiles % 7}`);
    if (randomFiles < 350) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${randomFiles}.bin`), randomBytes(size));
    randomFiles++;
    randomTotal += size;
  }
  // then copies of /usr/share: whole while it fits, then the top-level entries that still fit
  let remFiles = TARGET_FILES - randomFiles;
  let remBytes = TARGET_BYTES - randomTotal;
  const shareCopies: string[] = [];
  for (let n = 1; remFiles > 0 && remBytes > 0; n++) {
    const dest = join(data, `share${n}`);
    if (nonDirs(shareTotal) <= remFiles && shareTotal.bytes <= remBytes) {
      await must('cp', ['-a', SHARE, dest]);
      remFiles -= nonDirs(shareTotal);
      remBytes -= shareTotal.bytes;
      shareCopies.push(`share${n}/ = all of ${SHARE}`);
      continue;
    }
    await mkdir(dest);
    const took: string[] = [];
    for (const e of share) {
      if (nonDirs(e.c) <= remFiles && e.c.bytes <= remBytes) {
        await must('cp', ['-a', join(SHARE, e.name), join(dest, e.name)]);
        remFiles -= nonDirs(e.c);
        remBytes -= e.c.bytes;
        took.push(e.name);
      }
    }
    shareCopies.push(`share${n}/ = ${took.length} of the ${share.length} top-level entries of ${SHARE} (the ones that still fit, in name order)`);
    break;
  }
  // filler files for the rest of the count (incompressible, ≤ 16 KiB each), then random data for the rest of the size
  let fillerFiles = 0;
  let fillerBytes = 0;
  if (remFiles > 0) {
    const each = Math.max(512, Math.min(16 * 1024, Math.floor(Math.max(0, remBytes) / remFiles)));
    for (let i = 0; i < remFiles; i++) {
      const dir = join(data, 'fill', `d${String(i % 40).padStart(2, '0')}`);
      if (i < 40) mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `f${i}.dat`), randomBytes(each));
      fillerFiles++;
      fillerBytes += each;
    }
    remBytes -= fillerFiles * each;
  }
  for (let i = 0; remBytes > 64 * 1024; i++) {
    const size = Math.min(8 * MiB, remBytes);
    mkdirSync(join(data, 'fill', 'big'), { recursive: true });
    writeFileSync(join(data, 'fill', 'big', `b${i}.bin`), randomBytes(size));
    fillerFiles++;
    fillerBytes += size;
    remBytes -= size;
  }
  const count = countTree(data);
  count.dirs--; // the data dir itself
  const duBytes = Number((await must('du', ['-sb', data])).split(/\s+/)[0]);
  return { randomFiles, randomBytes: randomTotal, shareCopies, fillerFiles, fillerBytes, count, duBytes };
}


/**
 * Rewrite ~1% of the files, evenly spread over the walk order (small ones, ≤ 64 KiB), then a few medium
 * ones (≤ 2 MiB, also spread) until ~10 MiB changed. Same size, new random content, same inode.
 */
function changeOnePercent(data: string): { files: number; bytes: number; small: number; medium: number } {
  const all = listFiles(data);
  const picked = new Set<number>();
  const target = Math.round(all.length * CHANGE_FRACTION);
  const stride = all.length / target;
  let bytes = 0;
  for (let k = 0; k < target; k++) {
    const start = Math.floor((k + 0.5) * stride);
    for (let i = start; i < Math.min(all.length, start + stride); i++) {
      const f = all[i]!;
      if (f.size > 0 && f.size <= 64 * 1024 && !picked.has(i)) {
        picked.add(i);
        bytes += f.size;
        break;
      }
    }
  }
  const small = picked.size;
  const mediums = all.map((f, i) => [f, i] as const).filter(([f, i]) => f.size > 256 * 1024 && f.size <= 2 * MiB && !picked.has(i));
  const need = Math.max(0, CHANGE_BYTES - bytes);
  const avg = mediums.reduce((s, [f]) => s + f.size, 0) / Math.max(1, mediums.length);
  const step = Math.max(1, Math.floor(mediums.length / Math.max(1, Math.ceil(need / avg))));
  for (let j = Math.floor(step / 2); j < mediums.length && bytes < CHANGE_BYTES * 0.97; j += step) {
    const [f, i] = mediums[j]!;
    picked.add(i);
    bytes += f.size;
  }
  for (const i of picked) writeFileSync(join(data, all[i]!.rel), randomBytes(all[i]!.size)); // O_TRUNC: same inode, new ctime
  return { files: picked.size, bytes, small, medium: picked.size - small };
}

// ---- measurement ----------------------------------------------------------------------------------

interface Row {
  op: string;
  /** which peers to compare with */
  state: 'first' | 'after';
  ferry: boolean;
  /** ferryd's durationMs for snapshots */
  workMs?: number;
  /** wall-clock of the CLI process / peer command */
  cmdMs: number;
  /** the `sync` right after it */
  syncMs: number;
  extra: number;
  note?: string;
}

interface PoolResult {
  kind: FsKind;
  method: string;
  dataset: Dataset;
  change: { files: number; bytes: number; small: number; medium: number };
  rows: Row[];
  cliBaselineMs: number;
  snaps: Array<{ label: string; id: string; durationMs: number; cliMs?: number; apiMs?: number; stats: any }>;
  btrfsDu?: Array<{ what: string; total: number; exclusive: number; shared: number }>;
  tarBytes: { first: number; after: number };
  phases: Record<string, number>;
  rmMs: number[];
  primitives?: Array<{ what: string; n: number; ms: number; floor: boolean }>;
  repeats?: Array<{ snapWorkMs: number; snapE2eMs: number; cpMs: number; cpE2eMs: number }>;
  /** hard-link pools: rounds of (1% change, restore to snapshot 1 through the API, cp -a) */
  restores?: Array<{ restoreMs: number; restoreE2eMs: number; cpMs: number; cpE2eMs: number; phases: string }>;
}

/** The phases of the last restore in place, as ferryd logged them (ms since each step's start): "walk 210, compare 250, …". */
async function restorePhases(f: Ferryd): Promise<string> {
  const lines = (await readFile(join(f.dir, 'ferryd.log'), 'utf8')).split('\n').filter((l) => l.includes('restored in place'));
  const last = lines.at(-1);
  if (!last) return '—';
  const t = (JSON.parse(last) as { timings?: { stage?: Record<string, number>; finish?: Record<string, number> } }).timings ?? {};
  const part = (o: Record<string, number> | undefined) => Object.entries(o ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
  return `stage: ${part(t.stage)}; finish: ${part(t.finish)}`;
}

/**
 * The walk every snapshot on a pool without filesystem snapshots makes, whatever changed, timed alone on the
 * same data (single-threaded, as the worker does it): lstat of every entry (to see what changed) and readdir
 * of every directory. For comparison, what the hard-link trees of earlier versions added on top: mkdir of
 * every directory and link() of every regular file from snapshot 1's copies, into a scratch tree deleted after.
 */
async function walkPrimitives(kind: FsKind, mnt: string, data: string, prevTree: string): Promise<Array<{ what: string; n: number; ms: number; floor: boolean }>> {
  const dirs: string[] = [];
  const regular: string[] = [];
  const all: string[] = [];
  const walk = (rel: string) => {
    const st = lstatSync(rel ? join(data, rel) : data);
    all.push(rel);
    if (st.isDirectory()) {
      if (rel) dirs.push(rel);
      for (const e of readdirSync(rel ? join(data, rel) : data)) walk(rel ? `${rel}/${e}` : e);
    } else if (st.isFile()) regular.push(rel);
  };
  walk('');
  const scratch = join(mnt, 'primitives');
  const out: Array<{ what: string; n: number; ms: number; floor: boolean }> = [];
  const time = async (what: string, n: number, floor: boolean, fn: () => void) => {
    await settle(kind, mnt);
    const t = performance.now();
    fn();
    out.push({ what, n, ms: performance.now() - t, floor });
  };
  await time('lstat (bigint) of every entry', all.length, true, () => {
    for (const rel of all) lstatSync(rel ? join(data, rel) : data, { bigint: true });
  });
  await time('readdir of every directory', dirs.length + 1, true, () => {
    readdirSync(data);
    for (const rel of dirs) readdirSync(join(data, rel));
  });
  await time('(hard-link trees only) mkdir of every directory', dirs.length + 1, false, () => {
    mkdirSync(scratch);
    for (const rel of dirs) mkdirSync(join(scratch, rel));
  });
  await time('(hard-link trees only) link() of every regular file', regular.length, false, () => {
    for (const rel of regular) linkSync(join(prevTree, rel), join(scratch, rel));
  });
  await rm(scratch, { recursive: true });
  await settle(kind, mnt);
  return out;
}

async function measure(kind: FsKind, mnt: string, fn: () => Promise<{ workMs?: number; note?: string } | void>): Promise<Omit<Row, 'op' | 'state' | 'ferry'>> {
  const before = await stableUsed(kind, mnt);
  await settle(kind, mnt);
  const t = performance.now();
  const r = (await fn()) ?? {};
  const cmdMs = performance.now() - t;
  const t2 = performance.now();
  await must('sync', []);
  const syncMs = performance.now() - t2;
  const after = await stableUsed(kind, mnt);
  return { cmdMs, syncMs, extra: after - before, ...(r.workMs !== undefined ? { workMs: r.workMs } : {}), ...(r.note ? { note: r.note } : {}) };
}

async function benchPool(kind: FsKind, share: Array<{ name: string; c: TreeCount }>, shareTotal: TreeCount, track: (fn: () => Promise<unknown>) => void): Promise<PoolResult> {
  const tPool = performance.now();
  const phases: Record<string, number> = {};
  const phase = (name: string, since: number) => (phases[name] = performance.now() - since);
  progress(`${kind}: making a ${POOL_MIB} MiB loop filesystem`);
  const fs: LoopFs = await makeLoopFs(kind, POOL_MIB);
  track(() => fs.destroy());
  made.push(fs.mountpoint, join(fs.mountpoint, '..', 'image'));
  const mnt = fs.mountpoint;
  const f = await startFerryd({ dir: join(mnt, 'ferry'), logLevel: 'info' });
  track(() => f.destroy());
  const peers = join(mnt, 'peers');
  await mkdir(peers);

  await cli(f, 'volume', 'create', VOL);
  const volRoot = join(f.dataDir, 'volumes', VOL);
  const data = join(volRoot, 'data');
  const status = (await cli(f, 'status')).json;
  const method: string = (status?.pools ?? []).map((p: { snapshotMethod?: string }) => p.snapshotMethod).find(Boolean) ?? '?';

  progress(`${kind}: writing the data set into ${data}`);
  let t = performance.now();
  const dataset = await makeDataset(data, share, shareTotal);
  await settle(kind, mnt);
  phase('data set', t);
  progress(`${kind}: data set: ${dataset.count.files} files + ${dataset.count.symlinks} symlinks in ${dataset.count.dirs} directories, du -sb ${dataset.duBytes} (${fmtB(dataset.duBytes)})`);

  const cliRuns: number[] = [];
  for (let i = 0; i < 5; i++) cliRuns.push((await cli(f, 'volume', 'ls')).ms);
  const cliBaselineMs = median(cliRuns);

  const rows: Row[] = [];
  const snaps: PoolResult['snaps'] = [];
  const tarBytes = { first: 0, after: 0 };
  /** deleting the peers' 60,000-file copies with fs.rm (recursive): not part of any timed step */
  const rmMs: number[] = [];
  const snapshot = async (label: string, state: Row['state']) => {
    progress(`${kind}: ${label}`);
    let rec: any;
    let cliMs = 0;
    const m = await measure(kind, mnt, async () => {
      const r = await cli(f, 'snapshot', 'create', VOL, '--name', label.split(' (')[0]!.replace(' ', '-'));
      rec = r.json;
      cliMs = r.ms;
      return { workMs: rec.durationMs };
    });
    snaps.push({ label, id: rec.id, durationMs: rec.durationMs, cliMs, stats: rec.stats });
    const st = rec.stats ?? {};
    const note = st.files !== undefined ? `${st.files} files: ${st.linked ?? 0} shared with earlier snapshots, ${st.copied ?? 0} copied (${fmtB(st.copiedBytes ?? 0)})` : `method ${rec.method}`;
    rows.push({ op: `ferry ${label}`, state, ferry: true, ...m, note });
    return rec.id as string;
  };
  const runPeers = async (state: Row['state']) => {
    const tgz = join(peers, `volume-${state}.tar.gz`);
    progress(`${kind}: tar czf (${state})`);
    const mt = await measure(kind, mnt, async () => void (await must('tar', ['czf', tgz, '-C', data, '.'])));
    tarBytes[state] = statSync(tgz).size;
    rows.push({ op: 'tar czf (Convoy-style)', state, ferry: false, ...mt, note: `archive ${fmtB(tarBytes[state])}` });
    await rm(tgz);
    progress(`${kind}: cp -a (${state})`);
    const copy = join(peers, `copy-${state}`);
    const mc = await measure(kind, mnt, async () => void (await must('cp', ['-a', data, copy])));
    rows.push({ op: 'cp -a (dvol-style)', state, ferry: false, ...mc, ...(kind === 'ext4' ? {} : { note: 'coreutils 9 cp defaults to --reflink=auto: blocks are shared' }) });
    let t = performance.now();
    await rm(copy, { recursive: true });
    rmMs.push(performance.now() - t);
    if (kind !== 'ext4') {
      progress(`${kind}: cp -a --reflink=never (${state})`);
      const mn = await measure(kind, mnt, async () => void (await must('cp', ['-a', '--reflink=never', data, copy])));
      rows.push({ op: 'cp -a --reflink=never', state, ferry: false, ...mn, note: 'a full copy, as cp -a before coreutils 9' });
      t = performance.now();
      await rm(copy, { recursive: true });
      rmMs.push(performance.now() - t);
    }
  };

  t = performance.now();
  const first = await snapshot('snapshot 1 (first)', 'first');
  phase('snapshot 1', t);
  t = performance.now();
  await runPeers('first');
  phase('peers, first', t);

  progress(`${kind}: rewriting ~1% of the files`);
  const change = changeOnePercent(data);
  progress(`${kind}: changed ${change.files} files, ${fmtB(change.bytes)}`);

  t = performance.now();
  await snapshot('snapshot 2 (after the 1% change)', 'after');
  phase('snapshot 2', t);
  t = performance.now();
  await runPeers('after');
  phase('peers, after', t);

  progress(`${kind}: snapshot 3 through the API socket (nothing changed)`);
  let rec3: any;
  const m3 = await measure(kind, mnt, async () => {
    const a = await unixRequest(f.apiSocket, 'POST', `/v1/volumes/${VOL}/snapshots`, JSON.stringify({ name: 'snapshot-3' }), { 'content-type': 'application/json' });
    if (a.status !== 201) throw new Error(`API snapshot: HTTP ${a.status}: ${a.text}`);
    rec3 = a.json;
    return { workMs: rec3.durationMs };
  });
  snaps.push({ label: 'snapshot 3 (nothing changed, API)', id: rec3.id, durationMs: rec3.durationMs, apiMs: m3.cmdMs, stats: rec3.stats });
  const st3 = rec3.stats ?? {};
  rows.push({ op: 'ferry snapshot 3 (nothing changed; API socket, no CLI process)', state: 'after', ferry: true, ...m3, note: st3.files !== undefined ? `${st3.files} files: ${st3.linked ?? 0} shared with earlier snapshots, ${st3.copied ?? 0} copied (${fmtB(st3.copiedBytes ?? 0)})` : `method ${rec3.method}` });

  let btrfsDu: PoolResult['btrfsDu'];
  if (kind === 'btrfs') {
    progress(`${kind}: btrfs filesystem du`);
    await settle(kind, mnt);
    const paths = [data, ...snaps.map((s) => join(volRoot, 'snapshots', s.id))];
    const out = await must('btrfs', ['filesystem', 'du', '-s', '--raw', ...paths]);
    btrfsDu = out.split('\n').slice(1).filter(Boolean).map((l, i) => {
      const [total, exclusive, shared] = l.trim().split(/\s+/).map(Number) as [number, number, number];
      return { what: i === 0 ? 'live data' : snaps[i - 1]!.label, total, exclusive, shared };
    });
  }

  let repeats: PoolResult['repeats'];
  if (method === 'hardlink') {
    repeats = [];
    for (let i = 1; i <= REPEATS; i++) {
      progress(`${kind}: round ${i} of ${REPEATS}: 1% change, snapshot (API), cp -a`);
      changeOnePercent(data);
      let rec: any;
      const ms = await measure(kind, mnt, async () => {
        const a = await unixRequest(f.apiSocket, 'POST', `/v1/volumes/${VOL}/snapshots`, JSON.stringify({ name: `round-${i}` }), { 'content-type': 'application/json' });
        if (a.status !== 201) throw new Error(`API snapshot: HTTP ${a.status}: ${a.text}`);
        rec = a.json;
        return { workMs: rec.durationMs };
      });
      const copy = join(peers, 'copy-round');
      const mc = await measure(kind, mnt, async () => void (await must('cp', ['-a', data, copy])));
      await rm(copy, { recursive: true });
      repeats.push({ snapWorkMs: rec.durationMs, snapE2eMs: ms.cmdMs + ms.syncMs, cpMs: mc.cmdMs, cpE2eMs: mc.cmdMs + mc.syncMs });
    }
  }

  let primitives: PoolResult['primitives'];
  if (method === 'hardlink') {
    progress(`${kind}: the walk of a snapshot, one system call kind at a time`);
    // snapshot 1, the first, holds a copy of every file: the hard-link comparison links from it
    primitives = await walkPrimitives(kind, mnt, data, join(volRoot, 'snapshots', first));
  }

  progress(`${kind}: restore to snapshot 1`);
  t = performance.now();
  const mr = await measure(kind, mnt, async () => void (await cli(f, 'snapshot', 'restore', VOL, first)));
  rows.push({ op: 'ferry snapshot restore (to snapshot 1)', state: 'first', ferry: true, ...mr, note: 'old live data deleted' });
  phase('restore', t);
  let restores: PoolResult['restores'];
  if (method === 'hardlink') {
    restores = [];
    t = performance.now();
    for (let i = 1; i <= REPEATS; i++) {
      progress(`${kind}: restore round ${i} of ${REPEATS}: 1% change, restore to snapshot 1 (API), cp -a`);
      changeOnePercent(data);
      const ms = await measure(kind, mnt, async () => {
        const a = await unixRequest(f.apiSocket, 'POST', `/v1/volumes/${VOL}/snapshots/${first}/restore`, '{}', { 'content-type': 'application/json' });
        if (a.status !== 200) throw new Error(`API restore: HTTP ${a.status}: ${a.text}`);
      });
      const copy = join(peers, 'copy-round');
      const mc = await measure(kind, mnt, async () => void (await must('cp', ['-a', data, copy])));
      await rm(copy, { recursive: true });
      restores.push({ restoreMs: ms.cmdMs, restoreE2eMs: ms.cmdMs + ms.syncMs, cpMs: mc.cmdMs, cpE2eMs: mc.cmdMs + mc.syncMs, phases: await restorePhases(f) });
    }
    phase('restore rounds', t);
  }
  progress(`${kind}: clone of snapshot 1`);
  t = performance.now();
  const mk = await measure(kind, mnt, async () => void (await cli(f, 'volume', 'create', 'clone', '-o', `from=${VOL}@${first}`)));
  rows.push({ op: 'ferry volume create clone -o from=bench@snapshot 1', state: 'first', ferry: true, ...mk });
  phase('clone', t);
  progress(`${kind}: remove snapshot 1`);
  t = performance.now();
  const held = (await cli(f, 'snapshot', 'ls', VOL)).json.length - 1;
  const mx = await measure(kind, mnt, async () => void (await cli(f, 'snapshot', 'rm', VOL, first)));
  rows.push({ op: 'ferry snapshot rm (snapshot 1)', state: 'first', ferry: true, ...mx, note: method === 'btrfs' ? 'a subvolume delete' : `the ${held} later snapshots still use most of its files: they are hard-linked into the oldest of them first` });
  phase('remove snapshot 1', t);
  phases['total for this pool'] = performance.now() - tPool;
  return { kind, method, dataset, change, rows, cliBaselineMs, snaps, tarBytes, phases, rmMs, ...(btrfsDu ? { btrfsDu } : {}), ...(primitives ? { primitives } : {}), ...(repeats ? { repeats } : {}), ...(restores ? { restores } : {}) };
}

// ---- main -----------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<unknown>> = [];
/** the loop filesystems' mountpoints and images this run made */
const made: string[] = [];
const track = (fn: () => Promise<unknown>) => void cleanups.push(fn);
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    while (cleanups.length) {
      const fn = cleanups.pop()!;
      try {
        await fn();
      } catch (e) {
        console.error(`bench/snapshots: cleanup step failed: ${String(e)}`);
      }
    }
  })());
onInterrupt(cleanup, progress);

const { out, emit } = reporter();

const results: PoolResult[] = [];
const startup: Record<string, number> = {};
let failed: unknown;
const now = new Date();
const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
// The source this run's build came from, taken now (others may commit while it runs).
const gitRev = sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']);
let porcelain = '';
try {
  porcelain = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' });
} catch {
  /* not a git checkout */
}
const dirtySrc = porcelain.split('\n').filter((l) => l.length > 3).map((l) => l.slice(3));
try {
  progress(`counting ${SHARE}`);
  const share = readdirSync(SHARE).sort().map((name) => ({ name, c: countTree(join(SHARE, name)) }));
  const shareTotal = countTree(SHARE);
  // node's own start-up, and the ferry CLI's (what every `ferry` command pays before its API call)
  for (const [what, args] of [['node -e \'\'', ['-e', '']], ['ferry --version', [FERRY_BIN, '--version']]] as const) {
    const v: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await must(process.execPath, [...args]);
      v.push(performance.now() - t);
    }
    startup[what] = median(v);
  }
  for (const kind of KINDS) results.push(await benchPool(kind, share, shareTotal, track));
} catch (e) {
  failed = e;
} finally {
  progress('cleaning up');
  await cleanup();
}
const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
// Leftovers: our images are named /tmp/ferry-KIND-*/image, our mounts /tmp/ferry-KIND-*/mnt.
// Leftovers of ours: the loop images and mountpoints this run made (other runs on the machine may have their own).
const mine = (l: string) => made.some((p) => l.includes(`${p} `) || l.includes(`${p})`) || l.endsWith(p));
const leftLoops = sh('losetup', ['-a']).split('\n').filter(mine);
const leftMounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter(mine);
const leftDirs = made.filter((p) => existsSync(p));
if (failed) {
  console.error(`bench/snapshots: FAILED: ${failed instanceof Error ? (failed.stack ?? failed.message) : String(failed)}`);
  console.error(`leftovers of this run: ${leftLoops.length} loop device(s), ${leftMounts.length} mount(s), ${leftDirs.length} path(s) ${[...leftLoops, ...leftMounts, ...leftDirs].join('; ')}`);
  process.exit(1);
}

// ---- report ---------------------------------------------------------------------------------------

const dfT = sh('df', ['-T', '/tmp']).split('\n').at(-1)!.split(/\s+/);
const dev = dfT[0]!.replace('/dev/', '');
const cpu = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? '?').trim();
const memGiB = (Number(readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s+(\d+)/)?.[1] ?? 0) / 1024 / 1024).toFixed(1);
const rotational = sh('cat', [`/sys/block/${dev}/queue/rotational`]);
const rootOpts = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[0] === dfT[0] && l.split(' ')[1] === dfT[6])?.split(' ')[3] ?? '?';

emit(`# Snapshots: ferry vs tar czf vs cp -a — ${now.toISOString()}`);
emit();
emit(`\`node dist/bench/snapshots.js${[...argv].map((a) => ` ${a}`).join('')}\`, ferry ${gitRev}${dirtySrc.length ? ` — built with uncommitted changes in: ${dirtySrc.map((s) => `\`${s}\``).join(', ')}` : ''}; whole run ${((performance.now() - t0Run) / 1000).toFixed(0)} s`);
emit();
emit('| machine | |');
emit('|---|---|');
emit(`| nproc | ${sh('nproc', [])} (${cpu}) |`);
emit(`| kernel (uname -r) | ${sh('uname', ['-r'])} |`);
emit(`| memory | ${memGiB} GiB |`);
emit(`| disk | the pools are ${POOL_MIB} MiB sparse loop images in /tmp: ${dfT[1]} on ${dfT[0]} (${rotational === '0' ? 'non-rotational' : rotational === '1' ? 'reported rotational (a VM disk)' : '?'}, mounted ${rootOpts}), ${sh('lsblk', ['-dno', 'SIZE', dfT[0]!])} |`);
emit(`| tools | ${sh('cp', ['--version']).split('\n')[0]}, ${sh('tar', ['--version']).split('\n')[0]}, ${sh('gzip', ['--version']).split('\n')[0]}${KINDS.includes('btrfs') ? `, ${sh('btrfs', ['--version']).split('\n')[0]}` : ''} |`);
emit(`| node | ${process.version} |`);
emit(`| load average | ${load0} at start, ${load1} at the end |`);
emit();
emit('How it was measured: every step runs after `sync` (and `btrfs filesystem sync` on btrfs), one at a time. ' +
  '**The page cache is warm for every step** — the data set was just written and caches are never dropped — so these are ' +
  'the times of a host that has the volume in memory; reads from a cold disk would add the same amount to ferry\'s full copies and to the peers. ' +
  '*ferryd work* is the snapshot\'s `durationMs` as ferryd records it (making the tree; without the `syncfs` that follows it); ' +
  '*wall-clock* is the `ferry` CLI process (node start-up, API call, ferryd\'s work and its `syncfs`) or the peer\'s command, end to end; ' +
  '*+ sync* adds the `sync` run right after it, so that every row ends with its data on disk (ferryd already synced: for it this adds ~nothing). ' +
  '*Extra space* is the change of the pool filesystem\'s df-used bytes (statfs: blocks − free) across the step, measured after sync, once two readings 250 ms apart agree (xfs frees deleted files\' blocks in the background). ' +
  'Ratios are this ÷ peer on *wall-clock + sync* and on extra space, against the peer run on the same data (snapshot 1, restore and clone: the first peer run; snapshots 2 and 3: the run after the change); below 1 means ferry is faster or smaller. ' +
  'The peers\' outputs go to the same pool filesystem and are deleted (not timed) after being measured. tar and cp -a are always full.');
emit();

for (const r of results) {
  const d = r.dataset;
  emit(`## ${r.kind} pool (ferry snapshot method: \`${r.method}\`)`);
  emit();
  emit(`Data set: **${d.count.files} files + ${d.count.symlinks} symlinks** (${d.count.files + d.count.symlinks} non-directories) in ${d.count.dirs} directories, **du -sb ${d.duBytes} bytes (${fmtB(d.duBytes)})** — ` +
    `${d.randomFiles} files of random data (${fmtB(d.randomBytes)}, 1 KiB-16 MiB), ${d.shareCopies.join('; ')}, ${d.fillerFiles} random filler files (${fmtB(d.fillerBytes)}). ` +
    `The 1% change: ${r.change.files} files rewritten in place (${r.change.small} small ones spread over the tree, ${r.change.medium} of 256 KiB-2 MiB), ${fmtB(r.change.bytes)}, same sizes, new random content.`);
  emit();
  const peer = (state: Row['state'], op: string) => r.rows.find((x) => !x.ferry && x.state === state && x.op === op);
  emit('| operation | ferryd work | wall-clock | wall-clock + sync | extra space | time ÷ cp -a | time ÷ tar czf | space ÷ cp -a | space ÷ tar czf | notes |');
  emit('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    const cp = peer(row.state, 'cp -a (dvol-style)')!;
    const tar = peer(row.state, 'tar czf (Convoy-style)')!;
    const e2e = row.cmdMs + row.syncMs;
    const peerCols = row.ferry
      ? [ratio(e2e, cp.cmdMs + cp.syncMs), ratio(e2e, tar.cmdMs + tar.syncMs), spaceRatio(row.extra, cp.extra), spaceRatio(row.extra, tar.extra)]
      : row.op.startsWith('cp -a (') ? ['1', ratio(e2e, tar.cmdMs + tar.syncMs), '1', ratio(row.extra, tar.extra)]
        : row.op.startsWith('tar') ? [ratio(e2e, cp.cmdMs + cp.syncMs), '1', ratio(row.extra, cp.extra), '1']
          : [ratio(e2e, cp.cmdMs + cp.syncMs), ratio(e2e, tar.cmdMs + tar.syncMs), ratio(row.extra, cp.extra), ratio(row.extra, tar.extra)];
    const name = row.ferry ? `**${row.op}**` : `${row.op}${row.state === 'after' ? ', after the change' : ', first'}`;
    emit(`| ${name} | ${row.workMs !== undefined ? fmtT(row.workMs) : '—'} | ${fmtT(row.cmdMs)} | ${fmtT(e2e)} | ${fmtB(row.extra)} | ${peerCols.join(' | ')} | ${row.note ?? ''} |`);
  }
  emit();
  emit(`A \`ferry --json volume ls\` (CLI process start-up + one API call) takes ${fmtT(r.cliBaselineMs)} (median of 5): that much of every CLI wall-clock is not snapshot work.`);
  if (r.btrfsDu) {
    emit();
    emit('`btrfs filesystem du -s --raw` after snapshot 3 (before the restore) — *exclusive* is what deleting that tree alone would free:');
    emit();
    emit('| tree | total | exclusive | set shared |');
    emit('|---|---|---|---|');
    for (const x of r.btrfsDu) emit(`| ${x.what} | ${fmtB(x.total)} | ${fmtB(x.exclusive)} | ${fmtB(x.shared)} |`);
  }
  if (r.repeats) {
    emit();
    emit(`${r.repeats.length} more rounds after snapshot 3, each: rewrite the same ~1% again, a snapshot through the API socket (no CLI process), then cp -a of the same data — each time ÷ sync as above:`);
    emit();
    emit('| round | snapshot: ferryd work | snapshot: request + sync | cp -a | cp -a + sync | cp -a + sync ÷ snapshot request + sync |');
    emit('|---|---|---|---|---|---|');
    r.repeats.forEach((x, i) => emit(`| ${i + 1} | ${fmtT(x.snapWorkMs)} | ${fmtT(x.snapE2eMs)} | ${fmtT(x.cpMs)} | ${fmtT(x.cpE2eMs)} | ${times(x.cpE2eMs, x.snapE2eMs)} |`));
    emit(`| **median** | ${fmtT(median(r.repeats.map((x) => x.snapWorkMs)))} | ${fmtT(median(r.repeats.map((x) => x.snapE2eMs)))} | ${fmtT(median(r.repeats.map((x) => x.cpMs)))} | ${fmtT(median(r.repeats.map((x) => x.cpE2eMs)))} | ${times(median(r.repeats.map((x) => x.cpE2eMs / x.snapE2eMs)), 1)} |`);
  }
  if (r.restores) {
    emit();
    emit(`${r.restores.length} rounds after the restore above, each: rewrite the same ~1% again, \`POST /v1/volumes/${VOL}/snapshots/SNAPSHOT-1/restore\` through the API socket (no CLI process), then cp -a of the same data — each time ÷ sync as above:`);
    emit();
    emit('| round | restore: request | restore: request + sync | cp -a | cp -a + sync | cp -a + sync ÷ restore request + sync |');
    emit('|---|---|---|---|---|---|');
    r.restores.forEach((x, i) => emit(`| ${i + 1} | ${fmtT(x.restoreMs)} | ${fmtT(x.restoreE2eMs)} | ${fmtT(x.cpMs)} | ${fmtT(x.cpE2eMs)} | ${times(x.cpE2eMs, x.restoreE2eMs)} |`));
    emit(`| **median** | ${fmtT(median(r.restores.map((x) => x.restoreMs)))} | ${fmtT(median(r.restores.map((x) => x.restoreE2eMs)))} | ${fmtT(median(r.restores.map((x) => x.cpMs)))} | ${fmtT(median(r.restores.map((x) => x.cpE2eMs)))} | ${times(median(r.restores.map((x) => x.cpE2eMs / x.restoreE2eMs)), 1)} |`);
    emit();
    emit('Where each restore\'s time went, as ferryd logged it (cumulative ms from the start of each step; *stage*: walk, compare, copy in the tree worker, then sync of the stage and the journal; *finish*: apply, sync of the live tree, journal removed):');
    emit();
    r.restores.forEach((x, i) => emit(`- round ${i + 1}: ${x.phases}`));
  }
  if (r.primitives) {
    emit();
    emit(`The walk every \`${r.method}\` snapshot makes whatever changed, each kind of system call timed alone on this data set (single-threaded, page cache warm), and what hard-link trees (ferry before manifests) added on top, into a scratch tree:`);
    emit();
    emit('| step | count | time | per item |');
    emit('|---|---|---|---|');
    for (const x of r.primitives) emit(`| ${x.what} | ${x.n} | ${fmtT(x.ms)} | ${((x.ms * 1000) / x.n).toFixed(1)} µs |`);
    const floor = r.primitives.filter((x) => x.floor).reduce((a, x) => a + x.ms, 0);
    emit(`| **the walk (lstat + readdir)** | | **${fmtT(floor)}** | |`);
  }
  emit();
  emit(`Deleting each of the peers' copies (fs.rm recursive, not timed above) took ${r.rmMs.map(fmtT).join(', ')}.`);
  emit();
  emit(`Time spent on this pool: ${Object.entries(r.phases).map(([k, v]) => `${k} ${fmtT(v)}`).join(', ')}.`);
  emit();
}

// ---- goals ----------------------------------------------------------------------------------------

emit('## Goals');
emit();
const btrfs = results.find((r) => r.kind === 'btrfs');
const ext4 = results.find((r) => r.kind === 'ext4');
if (btrfs) {
  const s = btrfs.snaps;
  const work = s.map((x) => x.durationMs);
  const cliMs = s.filter((x) => x.cliMs !== undefined).map((x) => x.cliMs!);
  const api = s.find((x) => x.apiMs !== undefined)!;
  const okWork = work.every((w) => w < 50);
  const okCli = cliMs.every((c) => c < 50);
  emit(`- **btrfs snapshot under 50 ms**`);
  emit(`  - ferryd's own time (durationMs): ${s.map((x) => `${x.label}: ${x.durationMs} ms`).join('; ')} — **${okWork ? 'met' : 'NOT met'}**`);
  emit(`  - through the API socket, no CLI process (request to answer, snapshot 3): ${fmtT(api.apiMs!)} — **${api.apiMs! < 50 ? 'met' : 'NOT met'}**`);
  emit(`  - \`ferry snapshot create\` end to end (CLI process): ${cliMs.map(fmtT).join(', ')} — **${okCli ? 'met' : 'NOT met'}**; a no-op CLI call (\`ferry volume ls\`) alone takes ${fmtT(btrfs.cliBaselineMs)}, \`ferry --version\` ${fmtT(startup['ferry --version']!)} and \`node -e ''\` ${fmtT(startup["node -e ''"]!)} (medians of 5): the CLI's start-up, not the snapshot`);
}
if (ext4) {
  const s2 = ext4.rows.find((x) => x.op.startsWith('ferry snapshot 2'))!;
  const s3 = ext4.rows.find((x) => x.op.startsWith('ferry snapshot 3'))!;
  const cp = ext4.rows.find((x) => !x.ferry && x.state === 'after' && x.op.startsWith('cp -a ('))!;
  const e2e = (x: Row) => x.cmdMs + x.syncMs;
  const v = (a: number, b: number) => `${times(b, a)} faster — **${b / a >= 10 ? 'met' : 'NOT met'}**`;
  emit(`- **ext4 incremental snapshot at least 10× faster than cp -a** (snapshot 2, after the 1% change, vs cp -a of the same data)`);
  emit(`  - durable, end to end: CLI wall-clock + sync ${fmtT(e2e(s2))} vs cp -a + sync ${fmtT(e2e(cp))}: ${v(e2e(s2), e2e(cp))}`);
  emit(`  - work only: ferryd durationMs ${fmtT(s2.workMs!)} vs cp -a without sync ${fmtT(cp.cmdMs)}: ${v(s2.workMs!, cp.cmdMs)}`);
  emit(`  - with nothing changed (snapshot 3, API): ferryd durationMs ${fmtT(s3.workMs!)}, request + sync ${fmtT(e2e(s3))} vs cp -a + sync ${fmtT(e2e(cp))}: ${times(e2e(cp), e2e(s3))}`);
  if (ext4.repeats) {
    const q = ext4.repeats.map((x) => x.cpE2eMs / x.snapE2eMs);
    emit(`  - the ${q.length} further rounds (API, no CLI start-up): cp -a + sync ÷ snapshot + sync = ${q.map((x) => times(x, 1)).join(', ')}; median ${times(median(q), 1)} — **${median(q) >= 10 ? 'met' : 'NOT met'}**`);
  }
  if (ext4.primitives) {
    const floor = ext4.primitives.filter((p) => p.floor).reduce((x, p) => x + p.ms, 0);
    emit(`  - floor: the walk of the live tree alone (lstat + readdir, timed apart) takes ${fmtT(floor)}; 10× cp -a + sync means the whole snapshot in ${fmtT(e2e(cp) / 10)}`);
  }
  const r1 = ext4.rows.find((x) => x.op.startsWith('ferry snapshot restore'))!;
  const cp1 = ext4.rows.find((x) => !x.ferry && x.state === 'first' && x.op.startsWith('cp -a ('))!;
  emit(`- **ext4 restore after a 1% change at least 10× faster than cp -a** (issue 17, goal 2)`);
  emit(`  - the first restore (CLI, end to end + sync) ${fmtT(e2e(r1))} vs cp -a + sync ${fmtT(e2e(cp1))}: ${v(e2e(r1), e2e(cp1))}`);
  if (ext4.restores) {
    const q = ext4.restores.map((x) => x.cpE2eMs / x.restoreE2eMs);
    emit(`  - the ${q.length} restore rounds (API, no CLI start-up; each against the cp -a run right after it): cp -a + sync ÷ restore + sync = ${q.map((x) => times(x, 1)).join(', ')}; median ${times(median(q), 1)} — **${median(q) >= 10 ? 'met' : 'NOT met'}**`);
  }
}
emit();
emit(`Clean-up: ferryd stopped, loop filesystems unmounted and their images deleted. Leftovers of this run's ${made.length / 2} loop filesystem(s) after clean-up: ${leftLoops.length} loop device(s) in \`losetup -a\`, ${leftMounts.length} mount(s) in /proc/mounts, ${leftDirs.length} image/mountpoint path(s)${leftLoops.length + leftMounts.length + leftDirs.length ? ` — **NOT clean**: ${[...leftLoops, ...leftMounts, ...leftDirs].join('; ')}` : ' — clean'}.`);

if (!argv.has('--no-write')) {
  const file = join(ROOT, 'bench', 'results', `snapshots-${now.toISOString().slice(0, 10)}${TAG ? `-${TAG}` : ''}.md`);
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(file, out.join('\n') + '\n');
  progress(`wrote ${file}`);
}
