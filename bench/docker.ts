/**
 * Ferry against Docker's built-in `local` driver, side by side, under a real (private) Docker engine:
 *   1. volume lifecycle: `docker volume create` + `docker run --rm -v V:/data bb sh -c :` + `docker volume rm`,
 *      ferry and local interleaved, N rounds;
 *   2. in-container write throughput on a ferry vs a local volume: 1 GiB with dd conv=fsync, and 5,000 files
 *      of 4 KiB then sync (timed inside the container, so container start-up is not counted);
 *   3. `docker volume ls` with 1,000 ferry volumes vs 1,000 local volumes (a second private engine);
 *   4. ferryd start-up time with those 1,000 volumes.
 * Prints a markdown report and writes it to bench/results/docker-YYYY-MM-DD.md.
 *   npm run build && node dist/bench/docker.js [N=30] [throughputReps=7]
 * Needs root, dockerd, docker, unshare, busybox (as the end-to-end tests).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../test/helpers/dockerhost.js';
import { startFerryd, unixRequest, ROOT, type Ferryd } from '../test/helpers/ferryd.js';
import { percentile, median, pluginClient, onInterrupt, reporter, workloadSeconds, writeWorkloads } from './lib.js';

function intArg(i: number, dflt: number, what: string): number {
  const raw = process.argv[i];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`usage: node dist/bench/docker.js [N=30] [throughputReps=7]\n${what} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}
const N = intArg(2, 30, 'N (lifecycle rounds)');
const REPS = intArg(3, 7, 'throughputReps');
const MANY = 1000;
const LS_RUNS = 10;
const RESTARTS = 5;
const SMALL_FILES = 5000;
/**
 * Pause after each throughput run, which ends with rm + sync (not timed). The file system is mounted with
 * `discard` here: on this VM disk a write issued within a few seconds of the discard of the previous
 * run's blocks ran up to 5x faster than once the discard had settled, so samples were bimodal and depended
 * on the order of the runs. With the pause every timed run starts from the same, settled state.
 */
const SETTLE_MS = { big: 6000, small: 2000 };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const pre = dockerHostPrerequisites();
if (!pre.ok) {
  console.error(`bench/docker: cannot start a private Docker engine, missing: ${pre.missing.join(', ')}`);
  process.exit(1);
}

type Driver = 'ferry' | 'local';
const DRIVERS: Driver[] = ['ferry', 'local'];
const t0Run = performance.now();
const progress = (msg: string) => process.stderr.write(`[bench/docker +${((performance.now() - t0Run) / 1000).toFixed(0)}s] ${msg}\n`);
const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
};
const ms = (v: number) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const ratio = (a: number, b: number) => (a / b).toFixed(3);
const sorted = (v: number[]) => [...v].sort((a, b) => a - b);
const p90 = (v: number[]) => percentile(sorted(v), 90);
const timed = async <T>(fn: () => Promise<T>): Promise<[number, T]> => {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
};

let h1: DockerHost | undefined; // ferry + local side by side (sections 1, 2, 3-ferry, 4)
let h2: DockerHost | undefined; // only local volumes (section 3-local)
let f: Ferryd | undefined;
let cleaning: Promise<void> | undefined;
/**
 * When containerd does not answer dockerd's health check in time (a loaded machine), dockerd sends it
 * SIGUSR1 before killing and restarting it, and containerd dumps its stacks to /tmp/containerd.PID.stacks.log
 * (a /tmp shared with the machine). Those of our engines are named in their dockerd.log: remove them.
 */
const containerdDumps = async (h: DockerHost | undefined): Promise<string[]> => {
  if (!h) return [];
  const log = await readFile(join(h.dir, 'dockerd.log'), 'utf8').catch(() => '');
  const pids = new Set<string>();
  for (const line of log.split('\n')) if (/killing and restarting containerd/.test(line)) for (const m of line.matchAll(/pid=(\d+)/g)) pids.add(m[1]!);
  return [...pids].map((p) => `/tmp/containerd.${p}.stacks.log`);
};
const cleanup = () =>
  (cleaning ??= (async () => {
    const dumps = [...(await containerdDumps(h1)), ...(await containerdDumps(h2))];
    for (const [what, fn] of [
      ['docker host 1', () => h1?.stop()],
      ['docker host 2', () => h2?.stop()],
      ['ferryd', () => f?.destroy()],
    ] as const) {
      try {
        await fn();
      } catch (e) {
        console.error(`bench/docker: cleanup of ${what} failed: ${String(e)}`);
      }
    }
    for (const d of dumps) {
      console.error(`bench/docker: WARNING: dockerd restarted an unresponsive containerd during this run; removing its stack dump ${d}`);
      await rm(d, { force: true });
    }
  })());
onInterrupt(cleanup, progress);

const { out, emit } = reporter();

try {
  // One after the other: two engines starting at once on 2 cores made dockerd find containerd unresponsive.
  progress('starting two private Docker engines');
  const e1 = (h1 = await startDockerHost({ name: 'bench' }));
  const e2 = (h2 = await startDockerHost({ name: 'bench-local' }));
  const fd = await startFerryd({ pluginSocket: join(e1.pluginDir, 'ferry.sock'), dockerHost: e1.host, logLevel: 'info' });
  f = fd;

  // ---- machine facts ----
  const now = new Date();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const dfT = sh('df', ['-T', '/tmp']).split('\n').at(-1)!.split(/\s+/);
  const gitRev = sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']);
  let porcelain = '';
  try {
    porcelain = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }); // not trimmed: 'XY path'
  } catch {
    /* not a git checkout */
  }
  const dirtySrc = porcelain.split('\n').filter((l) => l.length > 3).map((l) => l.slice(3));
  emit(`# Ferry vs Docker's \`local\` driver — ${now.toISOString()}`);
  emit();
  emit(`\`node dist/bench/docker.js ${N} ${REPS}\`, ferry ${gitRev}${dirtySrc.length ? ` — built with uncommitted changes in: ${dirtySrc.map((f) => `\`${f}\``).join(', ')}` : ''}`);
  emit();
  emit('| machine | |\n|---|---|');
  emit(`| nproc | ${sh('nproc', [])} |`);
  emit(`| kernel | ${sh('uname', ['-r'])} |`);
  emit(`| docker engine (private dockerd) | ${(await e1.dockerOk(['version', '--format', '{{.Server.Version}}'])).trim()} (client ${(await e1.dockerOk(['version', '--format', '{{.Client.Version}}'])).trim()}) |`);
  emit(`| storage driver | ${(await e1.dockerOk(['info', '--format', '{{.Driver}}'])).trim()} |`);
  emit(`| /tmp filesystem (\`df -T /tmp\`) | ${dfT[1]} on ${dfT[0]} (mounted on ${dfT[6]}) — holds ferryd's data dir and both engines' data-roots |`);
  emit(`| node | ${process.version} |`);
  emit(`| load average at start | ${load0} |`);
  emit();
  if (Number(load0.split(' ')[0]) >= 1) {
    emit(`**Warning: the machine was busy when this run started (1-minute load average ${load0.split(' ')[0]} on ${sh('nproc', [])} cores): other processes compete for CPU and disk, which inflates ferry's plugin round trips and fsyncs and adds noise everywhere. Prefer figures from a quiet machine.**`);
    emit();
  }

  const purgeTrash = async () => {
    const r = await fd.cli('trash', 'purge', '--all');
    if (r.code !== 0) throw new Error(`ferry trash purge --all: ${r.stderr}`);
  };

  // ---- 1. lifecycle ----
  progress(`1. lifecycle: ${N} rounds, ferry and local interleaved`);
  type Steps = { create: number; run: number; rm: number; total: number };
  const life: Record<Driver, Steps[]> = { ferry: [], local: [] };
  const cycle = async (d: Driver, name: string): Promise<Steps> => {
    const [create] = await timed(() => e1.dockerOk(['volume', 'create', ...(d === 'ferry' ? ['-d', 'ferry'] : []), name]));
    const [run] = await timed(() => e1.dockerOk(['run', '--rm', '--network', 'none', '-v', `${name}:/data`, 'bb', 'sh', '-c', ':']));
    const [rm] = await timed(() => e1.dockerOk(['volume', 'rm', name]));
    return { create, run, rm, total: create + run + rm };
  };
  for (let i = 0; i < 2; i++) for (const d of DRIVERS) await cycle(d, `warm-${d}-${i}`); // plugin activation, image cache
  await purgeTrash();
  for (let i = 0; i < N; i++) {
    for (const d of DRIVERS) life[d].push(await cycle(d, `lc-${d}-${i}`));
    if ((i + 1) % 10 === 0) await purgeTrash(); // outside the timed region
  }
  await purgeTrash();
  emit(`## 1. Volume lifecycle (${N} rounds, interleaved ferry, local, ferry, local, …)`);
  emit();
  emit('Each step is one `docker` CLI process against the private engine, timed in Node from spawn to exit (the CLI start-up, ~the same for both, is included).');
  emit();
  emit('| step | ferry median | ferry p90 | local median | local p90 | ferry/local (medians) |\n|---|---|---|---|---|---|');
  for (const step of ['create', 'run', 'rm', 'total'] as const) {
    const fv = life.ferry.map((s) => s[step]);
    const lv = life.local.map((s) => s[step]);
    const label = { create: '`docker volume create`', run: '`docker run --rm -v V:/data bb sh -c :`', rm: '`docker volume rm`', total: '**total**' }[step];
    emit(`| ${label} | ${ms(median(fv))} | ${ms(p90(fv))} | ${ms(median(lv))} | ${ms(p90(lv))} | ${ratio(median(fv), median(lv))} |`);
  }
  const lifeRatio = median(life.ferry.map((s) => s.total)) / median(life.local.map((s) => s.total));
  emit();
  emit(`Goal ferry/local ≤ 1.05 on the total: **${lifeRatio.toFixed(3)} — ${lifeRatio <= 1.05 ? 'met' : 'NOT met'}**`);
  emit();

  // ferryd's own share of one lifecycle: the plugin calls dockerd 20.10 makes for it (seen in ferryd's debug
  // log), sent straight to the plugin socket on a keep-alive connection, without dockerd.
  const CALLS: Array<[string, 'ok' | 'missing']> = [
    ['Get', 'missing'], ['Create', 'ok'], // docker volume create
    ['Get', 'ok'], ['Get', 'ok'], ['Mount', 'ok'], ['Get', 'ok'], ['Unmount', 'ok'], // docker run --rm
    ['Get', 'ok'], ['Get', 'ok'], ['Remove', 'ok'], // docker volume rm
  ];
  const direct: number[] = [];
  const perCall = new Map<string, number[]>();
  const pc0 = pluginClient(fd.pluginSocket);
  for (let i = 0; i < N; i++) {
    const name = `direct-${i}`;
    let total = 0;
    for (const [call, expect] of CALLS) {
      const t = performance.now();
      const a = await pc0.call(call, { Name: name, ID: `c${i}` });
      const dt = performance.now() - t;
      total += dt;
      if (expect === 'ok' && a.Err) throw new Error(`VolumeDriver.${call} ${name}: ${a.Err}`);
      if (expect === 'missing' && !a.Err) throw new Error(`VolumeDriver.${call} ${name}: expected "no such volume"`);
      perCall.set(call, [...(perCall.get(call) ?? []), dt]);
    }
    direct.push(total);
    if ((i + 1) % 10 === 0) await purgeTrash();
  }
  pc0.close();
  await purgeTrash();
  const lifeDiff = median(life.ferry.map((s) => s.total)) - median(life.local.map((s) => s.total));
  emit(`ferryd's own share: the ${CALLS.length} plugin calls dockerd makes for one ferry lifecycle (${CALLS.map((c) => c[0]).join(', ')}), sent straight to ferryd's plugin socket (keep-alive, no dockerd), take **${ms(median(direct))}** in all (median of ${N}; per call: ${[...perCall].map(([c, v]) => `${c} ${ms(median(v))}`).join(', ')}; Create, Mount, Unmount and Remove are on disk, fsynced, before they are answered). For a \`local\` volume dockerd does comparable work itself (directories, its metadata), so ferry's net cost is the difference of the medians, ${lifeDiff >= 0 ? '+' : ''}${ms(lifeDiff)} per lifecycle, not this sum.`);
  emit();

  // ---- 2. throughput ----
  progress(`2. throughput: ${REPS} repetitions of each workload, alternating ferry/local`);
  const vol: Record<Driver, string> = { ferry: 'tp-ferry', local: 'tp-local' };
  await e1.dockerOk(['volume', 'create', '-d', 'ferry', vol.ferry]);
  await e1.dockerOk(['volume', 'create', vol.local]);
  // busybox `date` has no %N: `ts %.s` prints gettimeofday() with microseconds (bench/lib.ts writeWorkloads).
  const scripts = writeWorkloads(1024, SMALL_FILES);
  const inContainer = async (d: Driver, which: 'big' | 'small'): Promise<number> => {
    const text = await e1.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol[d]}:/data`, 'bb', 'sh', '-c', scripts[which]], { timeoutMs: 300_000 });
    const seconds = workloadSeconds(text, scripts.expect[which], `${which} on ${d}`);
    await sleep(SETTLE_MS[which]);
    return seconds;
  };
  for (const d of DRIVERS) await inContainer(d, 'small'); // warm-up, not timed (first container on the volume)
  const tp: Record<Driver, { big: number[]; small: number[] }> = { ferry: { big: [], small: [] }, local: { big: [], small: [] } };
  for (const which of ['big', 'small'] as const) {
    for (let r = 0; r < REPS; r++) for (const d of DRIVERS) tp[d][which].push(await inContainer(d, which));
  }
  await e1.dockerOk(['volume', 'rm', vol.ferry, vol.local]);
  await purgeTrash();
  const mibs = (s: number[]) => s.map((x) => 1024 / x);
  const fps = (s: number[]) => s.map((x) => SMALL_FILES / x);
  emit(`## 2. In-container write throughput (${REPS} repetitions each, alternating ferry/local)`);
  emit();
  emit(`Timed inside the container (busybox \`ts %.s\`, µs), so container start-up is excluded; after each repetition the data is removed and synced, then a pause of ${SETTLE_MS.big / 1000} s (1 GiB) or ${SETTLE_MS.small / 1000} s (small files) lets the file system's discards settle (none of this timed).`);
  emit();
  emit('| workload | ferry median | local median | ferry/local (medians) | paired ratios: median (min–max) | ferry samples | local samples |\n|---|---|---|---|---|---|---|');
  const bigF = mibs(tp.ferry.big);
  const bigL = mibs(tp.local.big);
  const smF = fps(tp.ferry.small);
  const smL = fps(tp.local.small);
  const list = (v: number[]) => v.map((x) => x.toFixed(0)).join(', ');
  // ferry run i against the local run right after it (same machine state): robust when the disk changes mode
  const paired = (a: number[], b: number[]) => {
    const r = a.map((x, i) => x / b[i]!);
    return `${median(r).toFixed(3)} (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)})`;
  };
  emit(`| 1 GiB \`dd bs=1M conv=fsync\` | ${median(bigF).toFixed(0)} MiB/s | ${median(bigL).toFixed(0)} MiB/s | ${ratio(median(bigF), median(bigL))} | ${paired(bigF, bigL)} | ${list(bigF)} | ${list(bigL)} |`);
  emit(`| ${SMALL_FILES} × 4 KiB files + \`sync\` | ${median(smF).toFixed(0)} files/s | ${median(smL).toFixed(0)} files/s | ${ratio(median(smF), median(smL))} | ${paired(smF, smL)} | ${list(smF)} | ${list(smL)} |`);
  const tpRatios = [median(bigF) / median(bigL), median(smF) / median(smL)];
  emit();
  emit(`Goal ferry/local ≥ 0.98: **${tpRatios.map((r) => r.toFixed(3)).join(' and ')} — ${tpRatios.every((r) => r >= 0.98) ? 'met' : 'NOT met'}**`);
  emit();
  const spread = (v: number[]) => Math.max(...v) / Math.min(...v);
  if ([bigF, bigL, smF, smL].some((v) => spread(v) > 1.3)) {
    emit(`Spread warning: samples of one driver differ by up to ${Math.max(...[bigF, bigL, smF, smL].map(spread)).toFixed(2)}× (max/min), so a difference of a few per cent between the medians is within the noise. Both volumes are plain directories of the same ext4 file system (${dfT[0]}, mounted with ${sh('findmnt', ['-no', 'OPTIONS', '--target', '/tmp'])}), bind-mounted the same way. Read the medians with that noise in mind.`);
    emit();
  }

  // ---- 3. docker volume ls with 1,000 volumes ----
  // Both through the engine API (POST /volumes/create, what `docker volume create` sends), 20 at a time:
  // fast, and dockerd's own volume store then knows every volume, as after `docker volume create`.
  progress(`3. creating ${MANY} ferry volumes (engine 1) and ${MANY} local volumes (engine 2) through the engine API`);
  const engines: Record<Driver, DockerHost> = { ferry: e1, local: e2 };
  for (const d of DRIVERS) {
    for (let k = 0; k < MANY; k += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, MANY - k) }, async (_, j) => {
          const body = JSON.stringify({ Name: `many-${k + j}`, Driver: d });
          const a = await unixRequest(engines[d].socket, 'POST', '/volumes/create', body, { 'content-type': 'application/json' });
          if (a.status !== 201) throw new Error(`POST /volumes/create (${d}): ${a.status} ${a.text}`);
        }),
      );
    }
  }
  for (const d of DRIVERS) {
    const lines = (await engines[d].dockerOk(['volume', 'ls', '--format', '{{.Driver}}'])).trim().split('\n');
    if (lines.length !== MANY || lines.some((l) => l !== d)) throw new Error(`engine for ${d} lists ${lines.length} volumes (${[...new Set(lines)].join(',')}), expected ${MANY} ${d}`);
  }
  progress(`3. timing docker volume ls, ${LS_RUNS} runs each, interleaved`);
  const ls: Record<Driver, { cli: number[]; api: number[] }> = { ferry: { cli: [], api: [] }, local: { cli: [], api: [] } };
  const apiLs = async (e: DockerHost) => {
    const a = await unixRequest(e.socket, 'GET', '/volumes');
    if (a.status !== 200 || a.json?.Volumes?.length !== MANY) throw new Error(`GET /volumes: ${a.status}, ${a.json?.Volumes?.length} volumes`);
  };
  for (const d of DRIVERS) {
    await engines[d].dockerOk(['volume', 'ls']); // warm-up
    await apiLs(engines[d]);
  }
  for (let i = 0; i < LS_RUNS; i++) {
    for (const d of DRIVERS) ls[d].cli.push((await timed(() => engines[d].dockerOk(['volume', 'ls'])))[0]);
    for (const d of DRIVERS) ls[d].api.push((await timed(() => apiLs(engines[d])))[0]);
  }
  emit(`## 3. \`docker volume ls\` with ${MANY} volumes (median of ${LS_RUNS}, interleaved)`);
  emit();
  emit(`ferry: engine 1 with ${MANY} ferry volumes and no local ones; local: a second, fresh private engine with ${MANY} local volumes and no plugin. All created through the engine API (\`POST /volumes/create\`, as \`docker volume create\`), not timed.`);
  emit();
  emit('| measure | ferry median | ferry p90 | local median | local p90 | ferry/local |\n|---|---|---|---|---|---|');
  emit(`| \`docker volume ls\` (CLI process) | ${ms(median(ls.ferry.cli))} | ${ms(p90(ls.ferry.cli))} | ${ms(median(ls.local.cli))} | ${ms(p90(ls.local.cli))} | ${ratio(median(ls.ferry.cli), median(ls.local.cli))} |`);
  emit(`| \`GET /volumes\` (engine API, no CLI) | ${ms(median(ls.ferry.api))} | ${ms(p90(ls.ferry.api))} | ${ms(median(ls.local.api))} | ${ms(p90(ls.local.api))} | ${ratio(median(ls.ferry.api), median(ls.local.api))} |`);
  emit();

  // ---- 4. ferryd start-up ----
  progress(`4. ferryd start-up with ${MANY} volumes, ${RESTARTS} restarts`);
  const starts: number[] = [];
  for (let i = 0; i < RESTARTS; i++) {
    await fd.stop();
    starts.push((await timed(() => fd.start()))[0]);
  }
  const readyLines = (await fd.logs()).split('\n').filter((l) => l.includes('"msg":"ferryd ready"'));
  const internal = readyLines.slice(-RESTARTS).map((l) => Number(/"startupMs":(\d+)/.exec(l)?.[1]));
  const volumesSeen = readyLines.slice(-RESTARTS).map((l) => Number(/"volumes":(\d+)/.exec(l)?.[1]));
  if (internal.length !== RESTARTS || internal.some((v) => !Number.isFinite(v))) throw new Error(`expected ${RESTARTS} "ferryd ready" lines with startupMs, got ${internal.join(',')}`);
  if (volumesSeen.some((v) => v !== MANY)) throw new Error(`ferryd ready with ${volumesSeen.join(',')} volumes, expected ${MANY}`);
  emit(`## 4. ferryd start-up with ${MANY} volumes (median of ${RESTARTS} stop/start)`);
  emit();
  emit('| measure | median | p90 | samples |\n|---|---|---|---|');
  emit(`| spawn → "ferryd ready" logged (Node process start included) | ${ms(median(starts))} | ${ms(p90(starts))} | ${starts.map((v) => v.toFixed(0)).join(', ')} |`);
  emit(`| \`startupMs\` logged by ferryd (catalog load, recovery, sockets) | ${ms(median(internal))} | ${ms(p90(internal))} | ${internal.join(', ')} |`);
  emit();

  const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  emit(`Load average at the end: ${load1}. Whole run: ${((performance.now() - t0Run) / 1000).toFixed(0)} s.`);

  const file = join(ROOT, 'bench', 'results', `docker-${now.toISOString().slice(0, 10)}.md`);
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(file, out.join('\n') + '\n');
  progress(`report written to ${file}`);
} catch (e) {
  process.exitCode = 1;
  console.error(`bench/docker failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
} finally {
  progress('cleaning up');
  await cleanup();
}
