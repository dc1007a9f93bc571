/**
 * `docker volume ls` with many ferry volumes against as many `local` volumes (issue 17, item 4: ≤ 1.1×), under two
 * private Docker engines started one after the other (test/helpers/dockerhost.ts: nothing of the machine's own
 * engine is touched): engine 1 has ferryd as its volume plugin and only ferry volumes, engine 2 only `local` ones.
 * For each size (default 1,000 / 5,000 / 10,000, cumulative: the volumes of a smaller size stay) the volumes are
 * created through the engine API (`POST /volumes/create`, as `docker volume create`; not timed), ferryd's first
 * usage pass after its start is let finish, then ROUNDS rounds time, ferry and local interleaved: `docker volume ls`
 * (the CLI process), `GET /volumes` (the engine API, which asks the plugin's List), and the plugin's List alone
 * (what ferryd itself takes). `--before=PATH`: another build's bin/ferry (an older commit's checkout, built),
 * started in turn with this one on the same data dir and engine, half the rounds each time, twice: before/after
 * figures of one session. Writes bench/results/scale-docker-DATE.md (every sample, machine, load) and .svg/.png.
 *   npm run build && node dist/bench/scale-docker.js [sizes=1000,5000,10000] [rounds=10] [--before=PATH] [--no-write]
 * Needs root, dockerd, docker, unshare (as the end-to-end tests).
 */
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../test/helpers/dockerhost.js';
import { startFerryd, unixRequest, ROOT, FERRY_BIN, type Ferryd } from '../test/helpers/ferryd.js';
import { median, percentile, pluginClient, onInterrupt, reporter, progressLog, loadAverage, shOut, rssMB, timed } from './lib.js';
import { chartSize, lineCharts, svgToPng } from './chart.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const noWrite = process.argv.includes('--no-write');
const beforeArg = process.argv.find((a) => a.startsWith('--before='))?.slice('--before='.length);
const SIZES = (args[0] ?? '1000,5000,10000').split(',').map(Number);
const ROUNDS = Number(args[1] ?? 10);
if (SIZES.some((n, i) => !Number.isInteger(n) || n < 1 || (i > 0 && n <= SIZES[i - 1]!)) || !Number.isInteger(ROUNDS) || ROUNDS < 2) {
  console.error('usage: node dist/bench/scale-docker.js [sizes=1000,5000,10000 (increasing)] [rounds=10 (≥ 2)] [--before=PATH] [--no-write]');
  process.exit(2);
}
const GOAL = 1.1;
const pre = dockerHostPrerequisites();
if (!pre.ok) {
  console.error(`bench/scale-docker: cannot start a private Docker engine, missing: ${pre.missing.join(', ')}`);
  process.exit(1);
}

const progress = progressLog('scale-docker');
const load = loadAverage;
const sh = shOut;
const p = (v: number[], q: number) => percentile([...v].sort((a, b) => a - b), q);
const fmt = (v: number[]) => v.map((x) => x.toFixed(1)).join(', ');

interface Variant {
  label: string;
  bin: string;
  commit: string;
}
const commitOf = (bin: string) => sh('git', ['-C', resolve(dirname(bin), '..'), 'rev-parse', '--short', 'HEAD']);
const variants: Variant[] = [{ label: 'ferry', bin: FERRY_BIN, commit: commitOf(FERRY_BIN) }];
if (beforeArg) variants.push({ label: 'ferry before', bin: resolve(beforeArg), commit: commitOf(resolve(beforeArg)) });

interface Samples {
  cli: number[];
  api: number[];
  plugin: number[];
  rss: number[];
}
const samples = (): Samples => ({ cli: [], api: [], plugin: [], rss: [] });
interface Row {
  volumes: number;
  createSeconds: { ferry: number; local: number };
  ferry: Samples[]; // by variant
  local: Samples;
  load: string;
}

let e1: DockerHost | undefined;
let e2: DockerHost | undefined;
let f: Ferryd | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const [what, fn] of [
      ['ferryd', () => f?.destroy()],
      ['docker host 1', () => e1?.stop()],
      ['docker host 2', () => e2?.stop()],
    ] as const) {
      try {
        await fn();
      } catch (e) {
        console.error(`bench/scale-docker: cleanup of ${what} failed: ${String(e)}`);
      }
    }
  })());
onInterrupt(cleanup, progress);

const rows: Row[] = [];
const loadStart = load();
let dockerVersion = '?';
let ferrydDir = '';
try {
  progress('starting two private Docker engines, one after the other');
  e1 = await startDockerHost({ name: 'scale-ferry' });
  e2 = await startDockerHost({ name: 'scale-local' });
  dockerVersion = (await e1.dockerOk(['version', '--format', '{{.Server.Version}}'])).trim();
  const engine1 = e1;
  const engine2 = e2;
  // the ferryd of each variant in turn, on one directory (its data dir and the plugin socket engine 1 finds)
  const start = async (v: Variant) => {
    await f?.stop();
    f = await startFerryd({ ...(ferrydDir ? { dir: ferrydDir } : {}), pluginSocket: join(engine1.pluginDir, 'ferry.sock'), dockerHost: engine1.host, logLevel: 'info', bin: v.bin });
    ferrydDir = f.dir;
    return f;
  };
  await start(variants[0]!);

  const create = async (e: DockerHost, driver: string, from: number, to: number) => {
    const t = performance.now();
    for (let k = from; k < to; k += 20) {
      await Promise.all(Array.from({ length: Math.min(20, to - k) }, async (_, j) => {
        const a = await unixRequest(e.socket, 'POST', '/volumes/create', JSON.stringify({ Name: `v${String(k + j).padStart(5, '0')}`, Driver: driver }), { 'content-type': 'application/json' });
        if (a.status !== 201) throw new Error(`POST /volumes/create (${driver}): ${a.status} ${a.text}`);
      }));
    }
    return (performance.now() - t) / 1000;
  };
  const apiLs = async (e: DockerHost, n: number) => {
    const a = await unixRequest(e.socket, 'GET', '/volumes');
    if (a.status !== 200 || a.json?.Volumes?.length !== n) throw new Error(`GET /volumes: ${a.status}, ${a.json?.Volumes?.length} volumes, expected ${n}`);
  };
  /** ferryd's first usage pass after a start walks every volume: let it finish (it is not what is measured). */
  const settle = async (fd: Ferryd) => {
    const t = Date.now();
    while ((await unixRequest(fd.apiSocket, 'GET', '/v1/volumes')).text.includes('"snapshotNote":"not measured yet"')) {
      if (Date.now() - t > 120_000) throw new Error('ferryd\'s first usage pass was not done after 120 s');
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  let have = 0;
  for (const n of SIZES) {
    progress(`${n} volumes: creating ${n - have} ferry volumes (engine 1) and ${n - have} local volumes (engine 2)`);
    await start(variants[0]!);
    const createSeconds = { ferry: await create(engine1, 'ferry', have, n), local: await create(engine2, 'local', have, n) };
    have = n;
    for (const [e, d] of [[engine1, 'ferry'], [engine2, 'local']] as const) {
      const lines = (await e.dockerOk(['volume', 'ls', '--format', '{{.Driver}}'])).trim().split('\n');
      if (lines.length !== n || lines.some((l) => l !== d)) throw new Error(`the engine of ${d} lists ${lines.length} volumes (${[...new Set(lines)].join(',')}), expected ${n} ${d}`);
    }
    const row: Row = { volumes: n, createSeconds, ferry: variants.map(samples), local: samples(), load: '' };
    // each variant twice, half of the rounds each time (A B A B), so that a drift of the machine's load hits both
    const blocks = [...variants.keys(), ...variants.keys()];
    for (const [b, vi] of blocks.entries()) {
      const fd = await start(variants[vi]!);
      await settle(fd);
      const plugin = pluginClient(fd.pluginSocket);
      await engine1.dockerOk(['volume', 'ls']); // warm-up of both engines' caches and the CLI
      await engine2.dockerOk(['volume', 'ls']);
      const rounds = b < variants.length ? Math.ceil(ROUNDS / 2) : Math.floor(ROUNDS / 2);
      progress(`${n} volumes: ${rounds} rounds with ${variants[vi]!.label} (${variants[vi]!.commit})`);
      const s = row.ferry[vi]!;
      for (let i = 0; i < rounds; i++) {
        s.cli.push(await timed(() => engine1.dockerOk(['volume', 'ls'])));
        row.local.cli.push(await timed(() => engine2.dockerOk(['volume', 'ls'])));
        s.api.push(await timed(() => apiLs(engine1, n)));
        row.local.api.push(await timed(() => apiLs(engine2, n)));
        s.plugin.push(await timed(async () => {
          const l = await plugin.call('List', {});
          if ((l.Volumes as unknown[]).length !== n) throw new Error(`List gave ${(l.Volumes as unknown[]).length} volumes, not ${n}`);
        }));
      }
      plugin.close();
      s.rss.push(rssMB(fd.pid));
    }
    row.load = load();
    rows.push(row);
    progress(`${n} volumes: docker volume ls ferry/local ${(median(row.ferry[0]!.cli) / median(row.local.cli)).toFixed(3)}`);
  }
} finally {
  await cleanup();
  if (ferrydDir) await rm(ferrydDir, { recursive: true, force: true });
}

const { out, emit } = reporter();
const date = new Date().toISOString().slice(0, 10);
const ratio = (a: number[], b: number[]) => median(a) / median(b);
emit(`# \`docker volume ls\`: ferry volumes against \`local\` ones — ${date}`);
emit();
emit('| | |\n|---|---|');
emit(`| commit | ${variants.map((v) => `${v.label}: ${v.commit}`).join('; ')} (bench of ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}) |`);
emit(`| machine | ${sh('nproc', [])} cores, ${sh('uname', ['-r'])}, Node ${process.version}, Docker engine ${dockerVersion} (private), data dirs on ${sh('findmnt', ['-n', '-o', 'FSTYPE', '-T', '/tmp'])} |`);
emit(`| load average | ${loadStart} at start, ${load()} at the end |`);
emit(`| command | \`node dist/bench/scale-docker.js ${process.argv.slice(2).join(' ')}\` |`);
emit();
emit(`Two private engines: engine 1 with ferryd as its plugin and only ferry volumes, engine 2 with only \`local\` volumes (no plugin). Each size adds volumes to both through the engine API (\`POST /volumes/create\`, 20 at a time; not timed), lets ferryd's first usage pass after its start finish, then times ${ROUNDS} rounds, ferry and local interleaved: \`docker volume ls\` (the CLI process, what a user waits for), \`GET /volumes\` (the engine API: dockerd asks every driver's List and answers JSON), and ferryd's List alone at its plugin socket.${variants.length > 1 ? ` The two ferryd builds take turns on the same data dir and engine (A B A B, half the rounds each time); \`local\` is timed in every round.` : ''}`);
emit();
emit(`| volumes | driver | \`docker volume ls\` p50 / p90 | ratio to local | \`GET /volumes\` p50 / p90 | ratio to local | ferryd's List p50 / p90 | ferryd RSS | creating them |`);
emit('|---:|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  for (const [vi, v] of variants.entries()) {
    const s = r.ferry[vi]!;
    emit(`| ${r.volumes.toLocaleString('en-US')} | ${v.label} (${v.commit}) | ${p(s.cli, 50).toFixed(1)} / ${p(s.cli, 90).toFixed(1)} ms | **${ratio(s.cli, r.local.cli).toFixed(3)}** | ${p(s.api, 50).toFixed(1)} / ${p(s.api, 90).toFixed(1)} ms | ${ratio(s.api, r.local.api).toFixed(3)} | ${p(s.plugin, 50).toFixed(1)} / ${p(s.plugin, 90).toFixed(1)} ms | ${median(s.rss).toFixed(0)} MB | ${vi === 0 ? `${r.createSeconds.ferry.toFixed(0)} s` : ''} |`);
  }
  emit(`| ${r.volumes.toLocaleString('en-US')} | local | ${p(r.local.cli, 50).toFixed(1)} / ${p(r.local.cli, 90).toFixed(1)} ms | 1 | ${p(r.local.api, 50).toFixed(1)} / ${p(r.local.api, 90).toFixed(1)} ms | 1 | | | ${r.createSeconds.local.toFixed(0)} s |`);
}
const big = rows[rows.length - 1]!;
const goalRatio = ratio(big.ferry[0]!.cli, big.local.cli);
emit();
emit(`Goal at ${big.volumes.toLocaleString('en-US')} volumes, \`docker volume ls\` ferry/local ≤ ${GOAL}: **${goalRatio.toFixed(3)}, ${goalRatio <= GOAL ? 'met' : 'NOT met'}**${variants.length > 1 ? ` (before: ${ratio(big.ferry[1]!.cli, big.local.cli).toFixed(3)})` : ''}.`);
emit();
emit('## Every sample');
emit();
for (const r of rows) {
  emit(`- ${r.volumes} volumes (load at the end ${r.load}):`);
  for (const [vi, v] of variants.entries()) {
    const s = r.ferry[vi]!;
    emit(`  - ${v.label} (${v.commit}): docker volume ls ${fmt(s.cli)} ms; GET /volumes ${fmt(s.api)} ms; ferryd's List ${fmt(s.plugin)} ms; RSS ${fmt(s.rss)} MB`);
  }
  emit(`  - local: docker volume ls ${fmt(r.local.cli)} ms; GET /volumes ${fmt(r.local.api)} ms`);
}
const series = (pick: (r: Row) => Samples, what: keyof Samples, label: string) => ({ label, points: rows.map((r): [number, number] => [r.volumes, p(pick(r)[what], 50)]) });
const svg = lineCharts(`docker volume ls, ferry vs local, ${date} (bench/scale-docker.ts)`, 'volumes', [
  { title: 'docker volume ls (p50)', unit: 'ms', series: [...variants.map((v, vi) => series((r) => r.ferry[vi]!, 'cli', v.label)), series((r) => r.local, 'cli', 'local')] },
  { title: 'ferry / local, docker volume ls', unit: '×', series: variants.map((v, vi) => ({ label: v.label, points: rows.map((r): [number, number] => [r.volumes, ratio(r.ferry[vi]!.cli, r.local.cli)]) })), goal: { value: GOAL, label: 'goal' } },
  { title: 'GET /volumes and ferryd\'s List (p50)', unit: 'ms', series: [...variants.map((v, vi) => series((r) => r.ferry[vi]!, 'api', `GET, ${v.label}`)), series((r) => r.local, 'api', 'GET, local'), ...variants.map((v, vi) => series((r) => r.ferry[vi]!, 'plugin', `List, ${v.label}`))] },
]);
if (!noWrite) {
  const base = join(ROOT, 'bench', 'results', `scale-docker-${date}`);
  await writeFile(`${base}.md`, out.join('\n') + `\n\n![the curves](scale-docker-${date}.png) ([SVG](scale-docker-${date}.svg))\n`);
  await writeFile(`${base}.svg`, svg);
  const png = svgToPng(`${base}.svg`, ...chartSize(3));
  progress(`written: ${base}.md, .svg${png ? ' and .png' : ''}`);
}
