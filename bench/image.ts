/**
 * Image volumes against directory volumes and Docker's `local` driver, under a real (private) Docker engine:
 *   1. in-container write throughput: 512 MiB with dd conv=fsync, and 5,000 files of 4 KiB then sync (timed inside
 *      the container), image (ext4) vs ferry directory vs local, interleaved, REPS rounds;
 *   2. attach + mount of an image volume: the first Mount's time at ferryd's plugin socket (loop attach and mount
 *      of its ext4), against the Mount of a directory volume, N rounds, each followed by an Unmount (detach).
 * Prints a markdown report (machine, load, every sample) and writes it to bench/results/image-YYYY-MM-DD.md
 * (--no-write: print only).
 *   npm run build && node dist/bench/image.js [REPS=3] [N=30] [--no-write]
 * Needs root, dockerd, docker, unshare, busybox, losetup, mkfs.ext4 (as the end-to-end tests).
 */
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../test/helpers/dockerhost.js';
import { startFerryd, ROOT, type Ferryd } from '../test/helpers/ferryd.js';
import { percentile, median, pluginClient, onInterrupt, reporter, workloadSeconds, writeWorkloads, progressLog, loadAverage, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const noWrite = process.argv.includes('--no-write');
function intArg(i: number, dflt: number, what: string): number {
  const raw = args[i];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`usage: node dist/bench/image.js [REPS=3] [N=30] [--no-write]\n${what} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}
const REPS = intArg(0, 3, 'REPS');
const N = intArg(1, 30, 'N');
const SMALL_FILES = 5000;
const BIG_MIB = 512;
const SETTLE_MS = { big: 4000, small: 2000 };

const pre = dockerHostPrerequisites();
if (!pre.ok) {
  console.error(`bench/image: cannot start a private Docker engine, missing: ${pre.missing.join(', ')}`);
  process.exit(1);
}

type Kind = 'image' | 'dir' | 'local';
const KINDS: Kind[] = ['image', 'dir', 'local'];
const progress = progressLog('image');
const sh = shOut;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const load = loadAverage;

let h: DockerHost | undefined;
let f: Ferryd | undefined;
const cleanup = async () => {
  await h?.stop().catch(() => undefined);
  await f?.destroy().catch(() => undefined);
};
onInterrupt(cleanup, progress);

const { out, emit } = reporter();
try {
  const loadStart = load();
  h = await startDockerHost({ name: 'bench-img' });
  const pool = join(h.dir, 'images');
  await writeFile(join(h.dir, 'ferry.yaml'), ['pools:', '  img:', '    kind: image', `    path: ${pool}`].join('\n'));
  f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, logLevel: 'info', prefix: ['nsenter', '-t', String(h.pid), '-m', '--'], extraArgs: ['--config', join(h.dir, 'ferry.yaml')] });
  const engine = h;

  emit(`# Image volumes vs directory volumes vs Docker's local driver — ${new Date().toISOString().slice(0, 10)}`);
  emit();
  emit('| | |\n|---|---|');
  emit(`| commit | ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])} |`);
  emit(`| machine | ${sh('nproc', [])} cores, ${sh('uname', ['-r'])}, ${Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 1024 / 1024)} GiB, pools on ${sh('findmnt', ['-n', '-o', 'FSTYPE', '-T', pool])} |`);
  emit(`| load average at start | ${loadStart} |`);
  emit(`| command | \`node dist/bench/image.js ${REPS} ${N}\` |`);
  emit();

  // ---- 1. throughput ----
  const vol: Record<Kind, string> = { image: 'tp-image', dir: 'tp-dir', local: 'tp-local' };
  await engine.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=img', '-o', 'size=1G', vol.image]);
  await engine.dockerOk(['volume', 'create', '-d', 'ferry', vol.dir]);
  await engine.dockerOk(['volume', 'create', vol.local]);
  const scripts = writeWorkloads(BIG_MIB, SMALL_FILES);
  const inContainer = async (k: Kind, which: 'big' | 'small'): Promise<number> => {
    const text = await engine.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol[k]}:/data`, 'bb', 'sh', '-c', scripts[which]], { timeoutMs: 300_000 });
    const seconds = workloadSeconds(text, scripts.expect[which], `${which} on ${k}`);
    await sleep(SETTLE_MS[which]);
    return seconds;
  };
  progress(`1. throughput: ${REPS} rounds of each workload, interleaved image/dir/local`);
  for (const k of KINDS) await inContainer(k, 'small'); // warm-up
  const tp: Record<Kind, { big: number[]; small: number[] }> = { image: { big: [], small: [] }, dir: { big: [], small: [] }, local: { big: [], small: [] } };
  for (const which of ['big', 'small'] as const) for (let r = 0; r < REPS; r++) for (const k of KINDS) tp[k][which].push(await inContainer(k, which));
  const rate = { big: (s: number) => BIG_MIB / s, small: (s: number) => SMALL_FILES / s };
  emit(`## 1. In-container write throughput (${REPS} rounds, interleaved; timed inside the container)`);
  emit();
  emit('| workload | image (ext4 1 GiB) | ferry dir | local | image/local | dir/local | image samples | dir samples | local samples |\n|---|---|---|---|---|---|---|---|---|');
  for (const which of ['big', 'small'] as const) {
    const v = (k: Kind) => tp[k][which].map(rate[which]);
    const unit = which === 'big' ? 'MiB/s' : 'files/s';
    const list = (k: Kind) => v(k).map((x) => x.toFixed(0)).join(', ');
    emit(`| ${which === 'big' ? `${BIG_MIB} MiB \`dd bs=1M conv=fsync\`` : `${SMALL_FILES} × 4 KiB files + \`sync\``} | ${median(v('image')).toFixed(0)} ${unit} | ${median(v('dir')).toFixed(0)} ${unit} | ${median(v('local')).toFixed(0)} ${unit} | **${(median(v('image')) / median(v('local'))).toFixed(2)}** | ${(median(v('dir')) / median(v('local'))).toFixed(2)} | ${list('image')} | ${list('dir')} | ${list('local')} |`);
  }
  emit();

  // ---- 2. attach + mount ----
  progress(`2. attach + mount: ${N} Mount/Unmount pairs of an image and of a directory volume`);
  const plugin = pluginClient(f.pluginSocket);
  await plugin.call('Create', { Name: 'am-image', Opts: { pool: 'img', size: '256M' } });
  await plugin.call('Create', { Name: 'am-dir', Opts: {} });
  const mountMs: Record<'image' | 'dir', number[]> = { image: [], dir: [] };
  const unmountMs: Record<'image' | 'dir', number[]> = { image: [], dir: [] };
  for (let i = 0; i < N; i++) {
    for (const k of ['image', 'dir'] as const) {
      let t = performance.now();
      const m = await plugin.call('Mount', { Name: `am-${k}`, ID: `b${i}` });
      mountMs[k].push(performance.now() - t);
      if (m.Err) throw new Error(`Mount am-${k}: ${m.Err}`);
      t = performance.now();
      const u = await plugin.call('Unmount', { Name: `am-${k}`, ID: `b${i}` });
      unmountMs[k].push(performance.now() - t);
      if (u.Err) throw new Error(`Unmount am-${k}: ${u.Err}`);
    }
  }
  plugin.close();
  const p = (v: number[], q: number) => percentile([...v].sort((a, b) => a - b), q).toFixed(1);
  emit(`## 2. Attach + mount of an image volume (${N} first Mounts, each undone by its Unmount: loop attach + ext4 mount, then unmount + detach)`);
  emit();
  emit('| volume | Mount p50 | Mount p90 | Mount max | Unmount p50 | Unmount p90 |\n|---|---|---|---|---|---|');
  for (const k of ['image', 'dir'] as const) emit(`| ${k} | ${p(mountMs[k], 50)} ms | **${p(mountMs[k], 90)} ms** | ${Math.max(...mountMs[k]).toFixed(1)} ms | ${p(unmountMs[k], 50)} ms | ${p(unmountMs[k], 90)} ms |`);
  emit();
  emit(`Goal: image attach + mount under 150 ms at the 90th percentile: **${Number(p(mountMs.image, 90)) < 150 ? 'met' : 'NOT met'}**.`);
  emit();
  emit('Every sample (ms), Mount image: ' + mountMs.image.map((x) => x.toFixed(1)).join(', '));
  emit();
  emit('Mount dir: ' + mountMs.dir.map((x) => x.toFixed(1)).join(', '));
  emit();
  emit('Unmount image: ' + unmountMs.image.map((x) => x.toFixed(1)).join(', '));
  emit();
  emit(`Load average at the end: ${load()}.`);
  await engine.dockerOk(['volume', 'rm', vol.image, vol.dir, vol.local]);
} finally {
  await cleanup();
}
const text = out.join('\n') + '\n';
if (!noWrite) {
  const file = join(ROOT, 'bench', 'results', `image-${new Date().toISOString().slice(0, 10)}.md`);
  await writeFile(file, text);
  progress(`written: ${file}`);
}
