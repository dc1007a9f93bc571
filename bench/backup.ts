/**
 * Backups: ferry's backup engine (src/backup, file target, encrypted) side by side with restic on the same
 * ~1 GiB, ~60,000-file data set, in one run:
 *   1. first backup: wall time, repository size (du -sb of the repository directory);
 *   2. ~1% of the files rewritten (~10 MiB, spread over the tree); second backup: time, bytes added;
 *   3. full restore of the second backup into an empty directory: time;
 * and, for scale, the machine's disk read speed (dd iflag=direct of a 1 GiB file) and SHA-256 speed
 * (node:crypto, one thread). Ferry runs in this process (the library, no CLI), restic as a process.
 * ROUNDS rounds (default 3) with their own repositories, ferry first in even rounds, restic first in odd
 * ones (interleaved, so both see the same load); medians of the rounds, every sample, the load average
 * before each step. The page cache is warm (the data set was just written). `--gib X` scales the data set
 * (X GiB, 60,000 files per GiB; default 1); `--suffix S` names the report backup-DATE-S.md.
 * Everything runs on an ext4 filesystem with a journal, in a sparse loop image made here (needs root and
 * mkfs.ext4): the machines this runs on have their root ext4 without one, and there ext4 looks at the
 * recently deleted inodes before it reuses one (`recently_deleted`, for e2fsck's sake), which made creating
 * 18,000 files cost 0.26 to 5 s of system time depending on what was deleted in the last minutes.
 * `--in-tmpdir` runs in the temporary directory as before.
 *   npm run build && node dist/bench/backup.js [--rounds 3] [--gib 1] [--suffix S] [--no-write] [--in-tmpdir]
 * Prints a markdown report and writes it to bench/results/backup-YYYY-MM-DD[-S].md. Needs restic
 * (apt-get install -y restic), cp, du, dd. Everything lives in one temporary directory, removed at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { init, open, runBackup, runRestore, runVerify, type BackupInfo } from '../src/backup/index.js';
import { prng, listFiles, median } from './lib.js';
import { makeLoopFs } from '../test/helpers/loopfs.js';

const MiB = 1024 * 1024;
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
};
const GIB = Number(arg('--gib', '1'));
const ROUNDS = Math.max(1, Number(arg('--rounds', '3')));
const SUFFIX = arg('--suffix', '');
const TARGET_FILES = Math.round(60_000 * GIB);
const TARGET_BYTES = Math.round(1024 * MiB * GIB);
const RANDOM_BYTES = Math.round(200 * MiB * GIB);
const CHANGE_BYTES = Math.round(10 * MiB * GIB);
const SHARE = '/usr/share';
const PASSWORD = 'bench password';
const noWrite = process.argv.includes('--no-write');
const IN_TMPDIR = process.argv.includes('--in-tmpdir');

for (const tool of ['restic', 'cp', 'du', 'dd', ...(IN_TMPDIR ? [] : ['mkfs.ext4'])]) {
  if (spawnSync('which', [tool]).status !== 0) {
    console.error(`bench/backup: ${tool} is missing (apt-get install -y ${tool === 'restic' ? 'restic' : tool === 'mkfs.ext4' ? 'e2fsprogs' : 'coreutils'})`);
    process.exit(1);
  }
}
const t0 = performance.now();
const loadAtStart = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
const log = (m: string) => process.stderr.write(`[bench/backup +${((performance.now() - t0) / 1000).toFixed(0)}s] ${m}\n`);
const sh = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) => execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 256 * MiB }).trim();
const duBytes = (p: string) => Number(sh('du', ['-sb', p]).split(/\s+/)[0]);
const sync = () => sh('sync', []);
const fmtB = (n: number) => (n >= 10 * MiB ? `${(n / MiB).toFixed(0)} MiB` : n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);
const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;



function countTree(p: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (q: string) => {
    const st = lstatSync(q);
    if (st.isDirectory()) for (const e of readdirSync(q)) walk(join(q, e));
    else {
      files++;
      bytes += st.size;
    }
  };
  walk(p);
  return { files, bytes };
}

/** ~200 MiB random in files of mixed sizes, then copies of /usr/share (whole, then top-level entries) up to ~1 GiB / ~60,000 files. */
function makeDataset(data: string): string {
  const rnd = prng(20261127);
  let n = 0;
  let total = 0;
  while (total < RANDOM_BYTES) {
    const r = rnd();
    let size = r < 0.85 ? 1024 + Math.floor(rnd() * 63 * 1024) : r < 0.98 ? 64 * 1024 + Math.floor(rnd() * (2 * MiB - 64 * 1024)) : 2 * MiB + Math.floor(rnd() * 14 * MiB);
    size = Math.min(size, RANDOM_BYTES - total);
    const dir = join(data, 'random', `d${n % 50}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${n}.bin`), randomBytes(size));
    n++;
    total += size;
  }
  const share = countTree(SHARE);
  let files = n;
  const copies: string[] = [];
  for (let c = 1; files < TARGET_FILES && total < TARGET_BYTES; c++) {
    const dest = join(data, `share${c}`);
    if (files + share.files <= TARGET_FILES && total + share.bytes <= TARGET_BYTES) {
      sh('cp', ['-a', SHARE, dest]);
      files += share.files;
      total += share.bytes;
      copies.push(`all of ${SHARE}`);
      continue;
    }
    mkdirSync(dest);
    let took = 0;
    for (const e of readdirSync(SHARE).sort()) {
      const c2 = countTree(join(SHARE, e));
      if (files + c2.files <= TARGET_FILES && total + c2.bytes <= TARGET_BYTES) {
        sh('cp', ['-a', join(SHARE, e), join(dest, e)]);
        files += c2.files;
        total += c2.bytes;
        took++;
      }
    }
    copies.push(`${took} top-level entries of ${SHARE}`);
    break;
  }
  return `${n} random files (${fmtB(RANDOM_BYTES)}), then ${copies.join(' + ')}`;
}

/** ~1% of the files (small ones, spread over the tree) and medium ones until ~10 MiB: same size, new random content. */
function changeOnePercent(data: string): { files: number; bytes: number } {
  const all = listFiles(data);
  const picked = new Set<number>();
  const target = Math.round(all.length * 0.01);
  const stride = all.length / target;
  let bytes = 0;
  for (let k = 0; k < target; k++) {
    for (let i = Math.floor((k + 0.5) * stride); i < Math.min(all.length, (k + 1.5) * stride); i++) {
      if (all[i]!.size > 0 && all[i]!.size <= 64 * 1024 && !picked.has(i)) {
        picked.add(i);
        bytes += all[i]!.size;
        break;
      }
    }
  }
  const mediums = all.map((f, i) => [f, i] as const).filter(([f, i]) => f.size > 256 * 1024 && f.size <= 2 * MiB && !picked.has(i));
  const avg = mediums.reduce((a, [f]) => a + f.size, 0) / Math.max(1, mediums.length);
  const step = Math.max(1, Math.floor(mediums.length / Math.max(1, Math.ceil((CHANGE_BYTES - bytes) / avg))));
  // spread over the tree; wrap around until ~10 MiB changed
  for (let k = 0, j = Math.floor(step / 2); k < mediums.length && bytes < CHANGE_BYTES * 0.97; k++, j = (j + step) % mediums.length) {
    if (picked.has(mediums[j]![1])) {
      j = (j + 1) % mediums.length;
      continue;
    }
    picked.add(mediums[j]![1]);
    bytes += mediums[j]![0].size;
  }
  for (const i of picked) writeFileSync(join(data, all[i]!.rel), randomBytes(all[i]!.size));
  return { files: picked.size, bytes };
}

async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  sync();
  const t = performance.now();
  const value = await fn();
  sync(); // both tools' writes reach the disk inside the timed region
  return { ms: performance.now() - t, value };
}

// data set, dd file, per round two repositories (~0.5 GiB each per GiB) and two restored copies
const IMAGE_MIB = Math.ceil((3 + 3.5 * ROUNDS) * GIB * 1024 + 1024);
const loop = IN_TMPDIR
  ? undefined
  : await makeLoopFs('ext4', IMAGE_MIB, ['-E', 'lazy_itable_init=0,lazy_journal_init=0']).catch((err: unknown) => {
      console.error(`bench/backup: could not make the ${IMAGE_MIB} MiB ext4 loop filesystem in ${tmpdir()} (root, a free loop device and the space are needed; --in-tmpdir runs without it): ${(err as Error).message}`);
      process.exit(1);
    });
const tmp = mkdtempSync(join(loop?.mountpoint ?? tmpdir(), 'ferry-bench-backup-'));
/** dd reads the machine's disk itself, not the loop image */
const ddFile = join(tmpdir(), `ferry-bench-backup-dd-${process.pid}`);
const cleanup = async () => {
  rmSync(ddFile, { force: true });
  rmSync(tmp, { recursive: true, force: true });
  await loop?.destroy();
};
process.on('SIGINT', () => {
  void cleanup().finally(() => process.exit(130));
});

try {
  const data = join(tmp, 'data');
  const ferryRepo = join(tmp, 'ferry-repo');
  const resticRepo = join(tmp, 'restic-repo');
  const renv = { RESTIC_PASSWORD: PASSWORD, RESTIC_REPOSITORY: resticRepo, RESTIC_CACHE_DIR: join(tmp, 'restic-cache') };

  log('writing the data set');
  mkdirSync(data);
  const datasetDesc = makeDataset(data);
  const ds = countTree(data);
  log(`data set: ${ds.files} files, ${fmtB(ds.bytes)}`);

  // machine speeds
  const big = ddFile;
  sh('dd', ['if=/dev/urandom', `of=${big}`, 'bs=4M', 'count=256', 'status=none']);
  sync();
  const ddOut = spawnSync('dd', [`if=${big}`, 'of=/dev/null', 'bs=4M', 'iflag=direct'], { encoding: 'utf8' }).stderr;
  const ddMiBs = (() => {
    const m = /(\d+(?:\.\d+)?) s, (\d+(?:\.\d+)?) ([MG])B\/s/.exec(ddOut);
    if (!m) return NaN;
    return (1024 * MiB) / Number(m[1]) / MiB;
  })();
  rmSync(big);
  const buf = randomBytes(8 * MiB);
  const th = performance.now();
  for (let i = 0; i < 128; i++) createHash('sha256').update(buf).digest();
  const shaMiBs = 1024 / ((performance.now() - th) / 1000);

  // ROUNDS rounds, each with its own pair of repositories; ferry first in even rounds, restic first in odd
  // ones, so that drift in the machine's speed (other load, ext4 discards settling) hits both alike.
  const pause = () => {
    sync();
    execFileSync('sleep', ['4']); // let the file system settle after large deletes (discard)
  };
  const rounds = Array.from({ length: ROUNDS }, (_, i) => i);
  const repos = await Promise.all(rounds.map((r) => init(`file://${ferryRepo}-${r}`, { password: PASSWORD })));
  const renvOf = (r: number) => ({ ...renv, RESTIC_REPOSITORY: `${resticRepo}-${r}` });
  for (const r of rounds) sh('restic', ['init', '-q'], renvOf(r));
  type Sample = { ms: number; bytes?: number; load: string };
  const load1 = () => sh('cat', ['/proc/loadavg']).split(' ')[0]!;
  const res = { f1: [] as Sample[], r1: [] as Sample[], f2: [] as Sample[], r2: [] as Sample[], fr: [] as Sample[], rr: [] as Sample[] };
  const f1Info: BackupInfo[] = [];
  const f2Info: typeof f1Info = [];
  const both = async (r: number, ferry: () => Promise<void>, restic: () => Promise<void>) => {
    if (r % 2 === 0) {
      await ferry();
      await restic();
    } else {
      await restic();
      await ferry();
    }
  };

  // 1. first backups
  for (const r of rounds) {
    await both(
      r,
      async () => {
        const l = load1();
        const t = await timed(() => runBackup(repos[r]!, data, { volume: 'bench', node: 'bench' }));
        f1Info[r] = t.value;
        res.f1.push({ ms: t.ms, bytes: duBytes(`${ferryRepo}-${r}`), load: l });
        log(`ferry first backup ${fmtS(t.ms)}, ${fmtB(res.f1.at(-1)!.bytes!)}`);
        pause();
      },
      async () => {
        const l = load1();
        const t = await timed(() => sh('restic', ['backup', '-q', '--host', 'bench', data], renvOf(r)));
        res.r1.push({ ms: t.ms, bytes: duBytes(`${resticRepo}-${r}`), load: l });
        log(`restic first backup ${fmtS(t.ms)}, ${fmtB(res.r1.at(-1)!.bytes!)}`);
        pause();
      },
    );
  }

  // 2. 1% change, second backups
  const change = changeOnePercent(data);
  log(`changed ${change.files} files, ${fmtB(change.bytes)}`);
  pause();
  for (const r of rounds) {
    await both(
      r,
      async () => {
        const l = load1();
        const t = await timed(() => runBackup(repos[r]!, data, { volume: 'bench', node: 'bench' }));
        f2Info[r] = t.value;
        res.f2.push({ ms: t.ms, bytes: duBytes(`${ferryRepo}-${r}`) - res.f1[r]!.bytes!, load: l });
        log(`ferry second backup ${fmtS(t.ms)}, +${fmtB(res.f2.at(-1)!.bytes!)}`);
      },
      async () => {
        const before = duBytes(`${resticRepo}-${r}`);
        const l = load1();
        const t = await timed(() => sh('restic', ['backup', '-q', '--host', 'bench', data], renvOf(r)));
        res.r2.push({ ms: t.ms, bytes: duBytes(`${resticRepo}-${r}`) - before, load: l });
        log(`restic second backup ${fmtS(t.ms)}, +${fmtB(res.r2.at(-1)!.bytes!)}`);
      },
    );
  }

  // 3. full restores of the second backup
  let fOutCount = { files: 0, bytes: 0 };
  for (const r of rounds) {
    await both(
      r,
      async () => {
        // Restored trees stay until the end: deleting 60,000 files slowed whatever ran next on this disk.
        const out = join(tmp, `ferry-out-${r}`);
        const l = load1();
        const t = await timed(() => runRestore(repos[r]!, f2Info[r]!.id, out));
        res.fr.push({ ms: t.ms, load: l });
        log(`ferry restore ${fmtS(t.ms)}`);
        fOutCount = countTree(out);
        pause();
      },
      async () => {
        const out = join(tmp, `restic-out-${r}`);
        const l = load1();
        const t = await timed(() => sh('restic', ['restore', '-q', 'latest', '--target', out], renvOf(r)));
        res.rr.push({ ms: t.ms, load: l });
        log(`restic restore ${fmtS(t.ms)}`);
        pause();
      },
    );
  }
  const verify = await timed(() => runVerify(repos[0]!, { readData: true }));
  for (const r of repos) r.close();
  const reopen = await open(`file://${ferryRepo}-0`, { password: PASSWORD });
  const listed = await reopen.list();
  reopen.close();
  const mean = (xs: Sample[], k: 'ms' | 'bytes' = 'ms') => median(xs.map((x) => x[k] ?? 0));
  const samples = (xs: Sample[]) => xs.map((x) => `${(x.ms / 1000).toFixed(2)}@${x.load}`).join(' / ');
  const f1 = { ms: mean(res.f1), value: f1Info[0]! };
  const r1 = { ms: mean(res.r1) };
  const f2 = { ms: mean(res.f2), value: f2Info[0]! };
  const r2 = { ms: mean(res.r2) };
  const fr = { ms: mean(res.fr) };
  const rr = { ms: mean(res.rr) };
  const f1Size = mean(res.f1, 'bytes');
  const r1Size = mean(res.r1, 'bytes');
  const f2Added = mean(res.f2, 'bytes');
  const r2Added = mean(res.r2, 'bytes');
  const resticVersion = sh('restic', ['version']);
  const resticRepoVersion = (() => {
    try {
      return JSON.parse(sh('restic', ['cat', 'config'], renvOf(0))).version as number;
    } catch {
      return '?';
    }
  })();

  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const mibs = (bytes: number, ms: number) => (bytes / MiB / (ms / 1000)).toFixed(0);
  const commit = sh('git', ['-C', join(import.meta.dirname ?? '.', '../..'), 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', join(import.meta.dirname ?? '.', '../..'), 'status', '--porcelain', '--', 'src']);
  const date = new Date().toISOString().slice(0, 10);
  const lines = [
    `# Backups: ferry vs restic — ${date}`,
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, ${sh('uname', ['-r'])}, Node ${process.version}; ` +
      `${resticVersion} (repository version ${resticRepoVersion}, compression auto). Temp dir on ${loop ? `a ${(IMAGE_MIB / 1024).toFixed(0)} GiB sparse loop image (${sh('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '-T', tmp])}, with a journal) in ${tmpdir()} (${sh('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '-T', tmpdir()])})` : sh('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '-T', tmp])}. ` +
      `Build: ${commit}${dirty ? ' + uncommitted src/ changes' : ''}. Load average at the start: ${loadAtStart}; at the end: ${sh('cat', ['/proc/loadavg'])} (other work on the machine shows here).`,
    '',
    `Data set: ${ds.files} files, ${fmtB(ds.bytes)} (${datasetDesc}). Change: ${change.files} files rewritten (${fmtB(change.bytes)}), same sizes, new random content.`,
    `All repositories encrypted, on the same file system as the data (file target / local repository). Page cache warm; every timing includes a final \`sync\`.`,
    '',
    `Disk read (dd iflag=direct, 1 GiB): ${ddMiBs.toFixed(0)} MiB/s. SHA-256 (node:crypto, one thread): ${shaMiBs.toFixed(0)} MiB/s.`,
    '',
    `Times are the median of ${ROUNDS} rounds (samples in brackets, in run order, each as seconds@load average (1 min) just before it; ferry ran first in rounds 1, 3, …, restic first in rounds 2, 4, …). MiB/s are data-set bytes per second.`,
    '',
    '| step | ferry | restic | ferry/restic |',
    '|---|---|---|---|',
    `| first backup: time | ${fmtS(f1.ms)} (${mibs(ds.bytes, f1.ms)} MiB/s) [${samples(res.f1)}] | ${fmtS(r1.ms)} (${mibs(ds.bytes, r1.ms)} MiB/s) [${samples(res.r1)}] | ${ratio(f1.ms, r1.ms)} |`,
    `| first backup: repository size | ${fmtB(f1Size)} | ${fmtB(r1Size)} | ${ratio(f1Size, r1Size)} |`,
    `| second backup (1% changed): time | ${fmtS(f2.ms)} [${samples(res.f2)}] | ${fmtS(r2.ms)} [${samples(res.r2)}] | ${ratio(f2.ms, r2.ms)} |`,
    `| second backup: bytes added | ${fmtB(f2Added)} | ${fmtB(r2Added)} | ${ratio(f2Added, r2Added)} |`,
    `| full restore: time | ${fmtS(fr.ms)} (${mibs(ds.bytes, fr.ms)} MiB/s) [${samples(res.fr)}] | ${fmtS(rr.ms)} (${mibs(ds.bytes, rr.ms)} MiB/s) [${samples(res.rr)}] | ${ratio(fr.ms, rr.ms)} |`,
    '',
    `Ferry's own figures: first backup read ${fmtB(f1.value.bytes)} in ${f1.value.files} files, stored ${fmtB(f1.value.bytesNew)} of new chunks (before compression) as ${fmtB(f1.value.bytesAdded)}; ` +
      `second backup stored ${fmtB(f2.value.bytesNew)} of new chunks as ${fmtB(f2.value.bytesAdded)}. Restore wrote ${fOutCount.files} files. ` +
      `verify --read-data afterwards: ${verify.value.ok ? 'ok' : 'PROBLEMS'} in ${fmtS(verify.ms)} (${verify.value.packs} packs, ${verify.value.chunks} chunks). Backups listed: ${listed.length}.`,
    `Goals (issue 17): time ratios ≤ 0.7, repository size and bytes added ≤ 1.0 × restic's.`,
    '',
    `Per round (ferry/restic): first ${res.f1.map((x, i) => ratio(x.ms, res.r1[i]!.ms)).join(', ')}; second ${res.f2.map((x, i) => ratio(x.ms, res.r2[i]!.ms)).join(', ')}; restore ${res.fr.map((x, i) => ratio(x.ms, res.rr[i]!.ms)).join(', ')}. Sizes (MiB) ferry ${res.f1.map((x) => (x.bytes! / MiB).toFixed(0)).join(', ')}, restic ${res.r1.map((x) => (x.bytes! / MiB).toFixed(0)).join(', ')}; added ferry ${res.f2.map((x) => (x.bytes! / MiB).toFixed(1)).join(', ')}, restic ${res.r2.map((x) => (x.bytes! / MiB).toFixed(1)).join(', ')}.`,
    '',
    `JSON: ${JSON.stringify({ gib: GIB, files: ds.files, bytes: ds.bytes, f1: res.f1, r1: res.r1, f2: res.f2, r2: res.r2, fr: res.fr, rr: res.rr })}`,
  ];
  const report = lines.join('\n') + '\n';
  process.stdout.write(report);
  if (!noWrite) {
    const dir = join(import.meta.dirname ?? '.', '../../bench/results');
    if (existsSync(dir)) writeFileSync(join(dir, `backup-${date}${SUFFIX ? `-${SUFFIX}` : ''}.md`), report);
  }
} finally {
  await cleanup();
}
