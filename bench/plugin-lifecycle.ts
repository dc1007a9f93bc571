/**
 * The volume lifecycle through the managed (v2) plugin, the legacy host ferryd and Docker's `local` driver,
 * side by side in ONE private Docker engine: `docker volume create [-d DRIVER] V`, `docker run --rm
 * --network none -v V:/d bb sh -c :`, `docker volume rm V`; the three interleaved in every round (managed,
 * legacy, local, managed, ...), after two untimed warm-up rounds. Medians per step and in total, ratios
 * managed/local and legacy/local, every sample with the load average when its round began.
 *   npm run build && node dist/bench/plugin-lifecycle.js [N=20]
 * Writes bench/results/plugin-lifecycle-YYYY-MM-DDTHHMM.md (UTC; every run kept: on a shared machine one run is one sample of the load). Needs root, dockerd, docker, unshare, busybox,
 * strip and ldd (the plugin is built by tools/plugin-build.ts, as `npm run plugin` does).
 * The two ferryds have data dirs of their own on the same file system (/tmp) as the engine's data-root.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../test/helpers/dockerhost.js';
import { startFerryd, runFerry, run, ROOT, type Ferryd } from '../test/helpers/ferryd.js';
import { median, percentile, onInterrupt, reporter } from './lib.js';

const N = Number(process.argv[2] ?? 20);
if (!Number.isInteger(N) || N < 3) {
  console.error('usage: node dist/bench/plugin-lifecycle.js [N=20]   (N ≥ 3 rounds)');
  process.exit(2);
}
const pre = dockerHostPrerequisites();
if (!pre.ok) {
  console.error(`bench/plugin-lifecycle: cannot start a private Docker engine, missing: ${pre.missing.join(', ')}`);
  process.exit(1);
}

type Driver = 'managed' | 'legacy' | 'local';
const DRIVERS: Driver[] = ['managed', 'legacy', 'local'];
/** What `-d` says for each: the plugin is ferry:latest; the host ferryd answers on ferry-legacy.sock (no clash with the plugin's name). */
const DASH_D: Record<Driver, string[]> = { managed: ['-d', 'ferry'], legacy: ['-d', 'ferry-legacy'], local: [] };

const t0Run = performance.now();
const progress = (msg: string) => process.stderr.write(`[bench/plugin-lifecycle +${((performance.now() - t0Run) / 1000).toFixed(0)}s] ${msg}\n`);
const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
};
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const ms = (v: number) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);

let h: DockerHost | undefined;
let legacy: Ferryd | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const [what, fn] of [
      ['docker host (and the plugin in it)', () => h?.stop()],
      ['legacy ferryd', () => legacy?.destroy()],
    ] as const) {
      try {
        await fn();
      } catch (e) {
        console.error(`bench/plugin-lifecycle: cleanup of ${what} failed: ${String(e)}`);
      }
    }
  })());
onInterrupt(cleanup, progress);

const { out, emit } = reporter();

try {
  progress('starting a private Docker engine, building the plugin');
  const e = (h = await startDockerHost({ name: 'bench-mp' }));
  const pluginDir = join(e.dir, 'plugin');
  const built = await run(process.execPath, [join(ROOT, 'dist/tools/plugin-build.js'), '--out', pluginDir]);
  if (built.code !== 0) throw new Error(`plugin build: ${built.stderr}`);
  const state = join(e.dir, 'state');
  await mkdir(state);
  await e.dockerOk(['plugin', 'create', 'ferry', pluginDir], { timeoutMs: 180_000 });
  await e.dockerOk(['plugin', 'set', 'ferry', `state.source=${state}`, `host-run.source=${e.dir}`, `host-mnt.source=${state}`]);
  await e.dockerOk(['plugin', 'enable', 'ferry'], { timeoutMs: 120_000 });
  legacy = await startFerryd({ pluginSocket: join(e.pluginDir, 'ferry-legacy.sock'), dockerHost: e.host, logLevel: 'info' });
  const lf = legacy;
  const managedCli = (...a: string[]) => runFerry(['--plugin', join(state, 'ferry'), ...a]);
  const purgeTrash = async () => {
    for (const r of [await managedCli('trash', 'purge', '--all'), await lf.cli('trash', 'purge', '--all')]) if (r.code !== 0) throw new Error(`ferry trash purge --all: ${r.stderr}`);
  };

  const now = new Date();
  const load0 = loadavg();
  const gitRev = sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']);
  emit(`# Volume lifecycle: managed plugin vs legacy host ferryd vs \`local\` — ${now.toISOString()}`);
  emit();
  emit(`\`node dist/bench/plugin-lifecycle.js ${N}\`, ferry ${gitRev} (commit ${sh('git', ['-C', ROOT, 'rev-parse', 'HEAD'])})`);
  emit();
  emit('| machine | |\n|---|---|');
  emit(`| cpu | ${sh('nproc', [])} × ${cpus()[0]?.model ?? '?'} |`);
  emit(`| memory | ${(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) / 1024 / 1024).toFixed(1)} GiB |`);
  emit(`| kernel | ${sh('uname', ['-r'])} |`);
  emit(`| docker engine (private dockerd) | ${(await e.dockerOk(['version', '--format', '{{.Server.Version}}'])).trim()} (client ${(await e.dockerOk(['version', '--format', '{{.Client.Version}}'])).trim()}), storage driver ${(await e.dockerOk(['info', '--format', '{{.Driver}}'])).trim()} |`);
  emit(`| /tmp (engine data-root, both ferryd data dirs) | ${sh('findmnt', ['-no', 'FSTYPE,SOURCE', '--target', '/tmp'])} |`);
  emit(`| node (legacy ferryd; the plugin carries a stripped copy) | ${process.version} |`);
  emit(`| plugin | ${built.stdout.split('\n')[0]} |`);
  emit(`| load average at start (1, 5, 15 min) | ${load0} |`);
  emit();

  type Sample = { create: number; run: number; rm: number; total: number };
  const samples: Record<Driver, Sample[]> = { managed: [], legacy: [], local: [] };
  const loads: string[] = [];
  const timed = async (args: string[]) => {
    const t = performance.now();
    await e.dockerOk(args);
    return performance.now() - t;
  };
  const cycle = async (d: Driver, name: string): Promise<Sample> => {
    const create = await timed(['volume', 'create', ...DASH_D[d], name]);
    const run = await timed(['run', '--rm', '--network', 'none', '-v', `${name}:/d`, 'bb', 'sh', '-c', ':']);
    const rm = await timed(['volume', 'rm', name]);
    return { create, run, rm, total: create + run + rm };
  };
  progress(`warm-up, then ${N} rounds of managed, legacy, local`);
  for (let i = 0; i < 2; i++) for (const d of DRIVERS) await cycle(d, `warm-${d}-${i}`);
  // the drivers answered as the names say
  for (const d of DRIVERS) {
    await e.dockerOk(['volume', 'create', ...DASH_D[d], `which-${d}`]);
    const drv = (await e.dockerOk(['volume', 'inspect', '-f', '{{.Driver}}', `which-${d}`])).trim();
    if (drv !== { managed: 'ferry:latest', legacy: 'ferry-legacy', local: 'local' }[d]) throw new Error(`${d}: volume recorded with driver ${drv}`);
    await e.dockerOk(['volume', 'rm', `which-${d}`]);
  }
  await purgeTrash();
  for (let i = 0; i < N; i++) {
    loads.push(loadavg());
    // the order rotates, so that no driver always runs right after the same one
    const order = DRIVERS.map((_, k) => DRIVERS[(i + k) % DRIVERS.length]!);
    for (const d of order) samples[d].push(await cycle(d, `lc-${d}-${i}`));
    if ((i + 1) % 10 === 0) await purgeTrash(); // outside the timed cycles
  }
  await purgeTrash();
  const load1 = loadavg();

  const med = (d: Driver, step: keyof Sample) => median(samples[d].map((s) => s[step]));
  const p90 = (d: Driver, step: keyof Sample) => percentile([...samples[d].map((s) => s[step])].sort((a, b) => a - b), 90);
  emit(`## Medians of ${N} rounds (p90 in brackets)`);
  emit();
  emit('Each step is one `docker` CLI process against the private engine, timed from spawn to exit (the CLI start-up, the same for all three, is included). Every round runs the three drivers, in a rotating order.');
  emit();
  emit('| step | managed plugin | legacy host ferryd | local | managed/local | legacy/local | managed/legacy |\n|---|---|---|---|---|---|---|');
  for (const step of ['create', 'run', 'rm', 'total'] as const) {
    const label = { create: '`docker volume create`', run: '`docker run --rm -v V:/d bb sh -c :`', rm: '`docker volume rm`', total: '**total**' }[step];
    const [m, l, o] = DRIVERS.map((d) => med(d, step)) as [number, number, number];
    emit(`| ${label} | ${ms(m)} (${ms(p90('managed', step))}) | ${ms(l)} (${ms(p90('legacy', step))}) | ${ms(o)} (${ms(p90('local', step))}) | ${(m / o).toFixed(3)} | ${(l / o).toFixed(3)} | ${(m / l).toFixed(3)} |`);
  }
  emit();
  emit(`Load average (1, 5, 15 min): ${load0} at the start, ${load1} at the end; the 1-minute figure over the rounds: ${Math.min(...loads.map((l) => Number(l.split(' ')[0])))}–${Math.max(...loads.map((l) => Number(l.split(' ')[0])))}.`);
  if (Number(load0.split(' ')[0]) >= 1 || Number(load1.split(' ')[0]) >= 1) {
    emit();
    emit(`**The machine was busy (load ≥ 1 on ${sh('nproc', [])} cores): other work competed for CPU and disk. The absolute figures are inflated and noisy; the ratios, measured side by side in the same rounds, are the useful figure.**`);
  }
  emit();
  emit('## Every sample (ms)');
  emit();
  emit('| round | load (1 min) | managed create / run / rm / total | legacy create / run / rm / total | local create / run / rm / total |\n|---|---|---|---|---|');
  const cell = (s: Sample) => [s.create, s.run, s.rm, s.total].map((v) => v.toFixed(1)).join(' / ');
  for (let i = 0; i < N; i++) emit(`| ${i + 1} | ${loads[i]!.split(' ')[0]} | ${cell(samples.managed[i]!)} | ${cell(samples.legacy[i]!)} | ${cell(samples.local[i]!)} |`);
  emit();
  emit(`Whole run: ${((performance.now() - t0Run) / 1000).toFixed(0)} s.`);

  const file = join(ROOT, 'bench', 'results', `plugin-lifecycle-${now.toISOString().slice(0, 16).replace(/:/g, '')}.md`);
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(file, out.join('\n') + '\n');
  progress(`report written to ${file}`);
} catch (err) {
  process.exitCode = 1;
  console.error(`bench/plugin-lifecycle failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
} finally {
  progress('cleaning up');
  await cleanup();
}
