/**
 * A shared pool on GlusterFS at scale (issue 17, goal 4): for 1k/5k/10k volumes × 2/5/10 nodes, the file operations
 * idle nodes put on the NAS (counted at the brick, `gluster volume profile`), Docker's List and `docker volume ls`,
 * and Mount/Unmount latency at the plugin socket of one node.
 *
 *   npm run build && node dist/bench/share-scale.js [--volumes 1000,5000,10000] [--nodes 2,5,10] [--seconds 30]
 *       [--heartbeat 5s] [--pairs 200] [--rounds 10] [--docker] [--bin=PATH] [--tag NAME] [--no-write]
 *       [--gluster-cache coherent|defaults]
 *
 * One GlusterFS server in its own network namespace (test/helpers/gluster-local.ts) and one pool on it, which
 * grows from one volume count to the next (the volumes are made once, through node0's plugin socket). Each node is
 * a real ferryd with its own FUSE mount of the volume, as separate hosts would have; node0 is the plugin of a
 * private Docker engine with `--docker` (test/helpers/dockerhost.ts), the others run without Docker. Per volume
 * count, per node count (nodes started in turn, node0 first): every node lists all volumes, three heartbeats and
 * one usage pass of settling, the profile is cleared and the nodes are left alone for the window; then, on node0,
 * `rounds` plugin Lists and `docker volume ls`, and `pairs` Mount+Unmount of distinct volumes. `--bin` runs
 * another build's bin/ferry (before/after). Writes bench/results/share-scale-DATE[-TAG].md, .svg, .png; the
 * report is rewritten after every sample, so a run cut short keeps what it measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { startLocalGluster, type LocalGluster } from '../test/helpers/gluster-local.js';
import { startFerryd, ROOT, FERRY_BIN, type Ferryd } from '../test/helpers/ferryd.js';
import { startDockerHost, type DockerHost } from '../test/helpers/dockerhost.js';
import { loadAverage, onInterrupt, percentile, pluginClient, progressLog } from './lib.js';
import { chartSize, lineCharts, svgToPng } from './chart.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const VOLUMES = arg('--volumes', '1000,5000,10000').split(',').map(Number);
const NODES = arg('--nodes', '2,5,10').split(',').map(Number);
const SECONDS = Number(arg('--seconds', '30'));
const HEARTBEAT = arg('--heartbeat', '5s');
const PAIRS = Number(arg('--pairs', '200'));
const ROUNDS = Number(arg('--rounds', '10'));
const TAG = arg('--tag', '');
const DOCKER = args.includes('--docker');
/** The GlusterFS settings (test/helpers/gluster.ts): GlusterFS's 'defaults', or 'coherent' (three client caches off, docs/shared-pools.md). */
const GLUSTER_CACHE = arg('--gluster-cache', 'defaults');
if (GLUSTER_CACHE !== 'coherent' && GLUSTER_CACHE !== 'defaults') throw new Error(`--gluster-cache ${GLUSTER_CACHE}: give coherent or defaults`);
const NO_WRITE = args.includes('--no-write');
const binArg = args.find((a) => a.startsWith('--bin='))?.slice('--bin='.length);
const BIN = binArg ? resolve(binArg) : FERRY_BIN;
const progress = progressLog('share-scale');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hbMs = (() => {
  const m = /^(\d+)(ms|s)$/.exec(HEARTBEAT);
  if (!m) throw new Error(`--heartbeat ${HEARTBEAT}: give e.g. 5s`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
})();
const p = (v: number[], q: number) => (v.length ? percentile([...v].sort((a, b) => a - b), q) : NaN);

interface Sample {
  volumes: number;
  nodes: number;
  seconds: number;
  fops: Record<string, number>;
  load: string;
  listMs: number[];
  dockerLsMs: number[];
  mountMs: number[];
  unmountMs: number[];
}

/** `gluster volume profile VOL info cumulative`: the brick's calls per FOP. */
function parseProfile(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+ [mun]s\s+[\d.]+ [mun]s\s+[\d.]+ [mun]s\s+(\d+)\s+([A-Z_]+)\s*$/.exec(line);
    if (m) out[m[2]!] = (out[m[2]!] ?? 0) + Number(m[1]);
  }
  return out;
}

const total = (s: Sample) => Object.values(s.fops).reduce((a, b) => a + b, 0);
const perNode = (s: Sample) => total(s) / s.seconds / s.nodes;
const commit = execFileSync('git', ['-C', resolve(dirname(BIN), '..'), 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const dirty = execFileSync('git', ['-C', resolve(dirname(BIN), '..'), 'status', '--porcelain', 'src'], { encoding: 'utf8' }).trim();
const date = new Date().toISOString().slice(0, 10);
const loadStart = loadAverage();
const samples: Sample[] = [];
let startRetries = 0;
const resultBase = join(ROOT, 'bench', 'results', `share-scale-${date}${TAG ? `-${TAG}` : ''}`);

function report(final: boolean): string {
  const out: string[] = [];
  const e = (l = '') => out.push(l);
  const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '—');
  e(`# A shared pool at scale: idle NAS operations, List, docker volume ls, Mount (GlusterFS, ${NODES.join('/')} nodes)`);
  e();
  e('| | |');
  e('|---|---|');
  e(`| ferry measured | ${commit}${dirty ? ' (with uncommitted changes in src/)' : ''} (${BIN}) |`);
  e(`| date | ${new Date().toISOString()} |`);
  e(`| machine | ${cpus().length} × ${cpus()[0]?.model ?? '?'}, GlusterFS brick on ${tmpdir()} |`);
  e(`| load average | ${loadStart} at start, ${loadAverage()} ${final ? 'at the end' : 'now (run in progress)'} |`);
  e(`| GlusterFS cache settings | ${GLUSTER_CACHE === 'coherent' ? 'coherent: performance.stat-prefetch, quick-read, open-behind off (docs/shared-pools.md)' : "GlusterFS's defaults"} |`);
  e(`| heartbeatInterval | ${HEARTBEAT} (nodeTimeout 60s) |`);
  e(`| idle window | ${SECONDS} s per configuration, after every node listed all volumes, three heartbeats and 35 s (a usage pass) |`);
  e(`| node0 | ${DOCKER ? 'plugin of a private Docker engine (test/helpers/dockerhost.ts)' : 'ferryd without Docker'}; the other nodes \`--docker-host none\` |`);
  e(`| command | \`node dist/bench/share-scale.js ${args.join(' ')}\` |`);
  e(`| ferryd starts tried again | ${startRetries} (a start that missed the test helper's 15 s) |`);
  e();
  e('## Idle: file operations at the brick');
  e();
  e('| volumes | nodes | ops in window | ops/s (all nodes) | ops/s per node | load (1 min) |');
  e('|---:|---:|---:|---:|---:|---|');
  for (const s of samples) e(`| ${s.volumes} | ${s.nodes} | ${total(s)} | ${f1(total(s) / s.seconds)} | ${f1(perNode(s))} | ${s.load} |`);
  e();
  e('## node0: plugin List, `docker volume ls`, Mount and Unmount (ms)');
  e();
  e('| volumes | nodes | List p50 | List p99 | docker volume ls p50 | p99 | Mount p50 | Mount p90 | Mount p99 | Unmount p50 | Unmount p99 |');
  e('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of samples) e(`| ${s.volumes} | ${s.nodes} | ${f1(p(s.listMs, 50))} | ${f1(p(s.listMs, 99))} | ${f1(p(s.dockerLsMs, 50))} | ${f1(p(s.dockerLsMs, 99))} | ${f1(p(s.mountMs, 50))} | ${f1(p(s.mountMs, 90))} | ${f1(p(s.mountMs, 99))} | ${f1(p(s.unmountMs, 50))} | ${f1(p(s.unmountMs, 99))} |`);
  e();
  const fops = [...new Set(samples.flatMap((s) => Object.keys(s.fops)))].sort();
  e('## Every sample: calls per FOP in the idle window');
  e();
  e(`| volumes | nodes | ${fops.join(' | ')} |`);
  e(`|---:|---:|${fops.map(() => '---:').join('|')}|`);
  for (const s of samples) e(`| ${s.volumes} | ${s.nodes} | ${fops.map((f) => s.fops[f] ?? 0).join(' | ')} |`);
  e();
  e('## Every sample: latencies (ms, in the order measured)');
  e();
  for (const s of samples) {
    e(`- ${s.volumes} volumes, ${s.nodes} nodes: List ${s.listMs.map((x) => x.toFixed(1)).join(' ')}`);
    if (s.dockerLsMs.length) e(`  - docker volume ls ${s.dockerLsMs.map((x) => x.toFixed(0)).join(' ')}`);
    e(`  - Mount ${s.mountMs.map((x) => x.toFixed(1)).join(' ')}`);
    e(`  - Unmount ${s.unmountMs.map((x) => x.toFixed(1)).join(' ')}`);
  }
  e();
  return out.join('\n') + '\n';
}

async function save(final: boolean): Promise<void> {
  if (NO_WRITE) return;
  await writeFile(`${resultBase}.md`, report(final));
  if (!final || samples.length === 0) return;
  const byV = [...new Set(samples.map((s) => s.volumes))];
  const byN = [...new Set(samples.map((s) => s.nodes))];
  const svg = lineCharts(`shared pool on GlusterFS, ${date} ${commit} (bench/share-scale.ts)`, 'nodes / volumes', [
    { title: 'idle ops/s per node vs nodes', unit: 'ops/s', series: byV.map((v) => ({ label: `${v} volumes`, points: samples.filter((s) => s.volumes === v).map((s) => [s.nodes, perNode(s)] as [number, number]) })) },
    { title: 'idle ops/s, all nodes, vs volumes', unit: 'ops/s', series: byN.map((n) => ({ label: `${n} nodes`, points: samples.filter((s) => s.nodes === n).map((s) => [s.volumes, total(s) / s.seconds] as [number, number]) })) },
    { title: 'node0 List / docker volume ls p50 vs volumes', unit: 'ms', series: [{ label: 'plugin List', points: samples.filter((s) => s.nodes === byN.at(-1)).map((s) => [s.volumes, p(s.listMs, 50)] as [number, number]) }, ...(DOCKER ? [{ label: 'docker volume ls', points: samples.filter((s) => s.nodes === byN.at(-1)).map((s) => [s.volumes, p(s.dockerLsMs, 50)] as [number, number]) }] : [])], goal: { value: 150, label: 'goal (docker volume ls)' } },
    { title: 'node0 Mount p99 vs volumes', unit: 'ms', series: byN.map((n) => ({ label: `${n} nodes`, points: samples.filter((s) => s.nodes === n).map((s) => [s.volumes, p(s.mountMs, 99)] as [number, number]) })), goal: { value: 20, label: 'goal' } },
  ]);
  await writeFile(`${resultBase}.svg`, svg);
  const png = svgToPng(`${resultBase}.svg`, ...chartSize(4));
  progress(`written: ${resultBase}.md, .svg${png ? ', .png' : ''}`);
}

const base = await mkdtemp(join(tmpdir(), 'ferry-bench-sscale-'));
let g: LocalGluster | undefined;
let engine: DockerHost | undefined;
const daemons: Array<Ferryd | undefined> = [];
const mounts: string[] = [];
const cleanup = async () => {
  for (const d of daemons) await d?.destroy().catch(() => undefined);
  await engine?.stop().catch(() => undefined);
  for (const mp of mounts) await g?.unmount(mp).catch(() => undefined);
  await g?.stop().catch(() => undefined);
  await rm(base, { recursive: true, force: true });
};
onInterrupt(cleanup, progress);

/** Docker's Create at node0's plugin socket, tried again while the share is slow to answer (a busy machine). */
async function create(sock: string, from: number, to: number): Promise<void> {
  const c = pluginClient(sock);
  try {
    for (let i = from; i < to; i += 16) {
      await Promise.all(
        Array.from({ length: Math.min(16, to - i) }, async (_, j) => {
          const name = `v${String(i + j).padStart(5, '0')}`;
          for (let attempt = 0; ; attempt++) {
            const r = await c.call('Create', { Name: name });
            if (!r.Err) return;
            if (attempt > 20 || !/not answering|busy|try again/.test(String(r.Err))) throw new Error(`Create ${name}: ${r.Err}`);
            await sleep(1000);
          }
        }),
      );
      if (Math.floor((i + 16) / 1024) > Math.floor(i / 1024)) progress(`  created ${i + 16} of ${to}`);
    }
  } finally {
    c.close();
  }
}

try {
  g = await startLocalGluster({ cache: GLUSTER_CACHE });
  const s = await g.gluster.cli(['volume', 'profile', g.gluster.volume, 'start']);
  if (s.code !== 0) throw new Error(`gluster volume profile start: ${s.stderr || s.stdout}`);
  if (DOCKER) engine = await startDockerHost({ name: 'share-scale' });
  const maxNodes = Math.max(...NODES);
  for (let i = 0; i < maxNodes; i++) {
    const mp = join(base, `m${i}`);
    await mkdir(mp, { recursive: true });
    await g.mount(mp);
    mounts.push(mp);
  }
  await mkdir(join(mounts[0]!, 'pool'), { recursive: true });
  await writeFile(join(mounts[0]!, 'pool', '.ferry-pool'), 'share-scale bench\n');
  const startNode = async (i: number) => {
    const dir = join(base, `node${i}`);
    await mkdir(dir, { recursive: true });
    const yaml = [`node: node${i}`, `heartbeatInterval: ${HEARTBEAT}`, 'nodeTimeout: 60s', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${join(mounts[i]!, 'pool')}`, '    shared: true'].join('\n');
    await writeFile(join(dir, 'ferry.yaml'), yaml);
    const docker = i === 0 && engine ? { pluginSocket: join(engine.pluginDir, 'ferry.sock'), dockerHost: engine.host } : {};
    // (a ferryd joining 10,000 volumes on a busy machine can miss the helper's 15 s: tried again, and said so)
    for (let attempt = 1; ; attempt++) {
      try {
        daemons[i] = await startFerryd({ dir, bin: BIN, logLevel: 'info', ...docker, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', `node${i}`] });
        return;
      } catch (err) {
        if (attempt >= 4) throw err;
        progress(`node${i} did not come up in 15 s (attempt ${attempt}); again`);
        startRetries++;
      }
    }
  };
  const stopNode = async (i: number) => {
    await daemons[i]?.stop();
    daemons[i] = undefined;
  };
  await startNode(0);
  let have = 0;
  for (const v of VOLUMES) {
    progress(`creating volumes ${have}..${v}`);
    await create(daemons[0]!.pluginSocket, have, v);
    have = v;
    for (const n of NODES) {
      for (let i = 0; i < maxNodes; i++) {
        if (i < n && !daemons[i]) await startNode(i);
        if (i >= n && daemons[i]) await stopNode(i);
      }
      progress(`${v} volumes, ${n} nodes: every node lists, then settling`);
      for (let i = 0; i < n; i++) {
        const c = pluginClient(daemons[i]!.pluginSocket);
        for (let attempt = 0; ; attempt++) {
          const r = await c.call('List', {});
          const got = (r.Volumes as unknown[] | undefined)?.length;
          if (got === v) break;
          if (attempt > 30) throw new Error(`node${i} lists ${got} of ${v} volumes: ${r.Err}`);
          await sleep(1000);
        }
        c.close();
      }
      await sleep(3 * hbMs + 35_000);
      const cli = (a: string[]) => g!.gluster.cli(['volume', 'profile', g!.gluster.volume, ...a]);
      await cli(['info', 'clear']);
      const load = loadAverage().split(' ')[0]!;
      progress(`idle for ${SECONDS} s`);
      await sleep(SECONDS * 1000);
      const r = await cli(['info', 'cumulative']);
      if (r.code !== 0) throw new Error(`gluster volume profile info: ${r.stderr || r.stdout}`);
      const sample: Sample = { volumes: v, nodes: n, seconds: SECONDS, fops: parseProfile(r.stdout), load: `${load}–${loadAverage().split(' ')[0]}`, listMs: [], dockerLsMs: [], mountMs: [], unmountMs: [] };
      // latencies at node0, after the window (they are not idle work)
      const c = pluginClient(daemons[0]!.pluginSocket);
      for (let k = 0; k < ROUNDS; k++) {
        let t = performance.now();
        const l = await c.call('List', {});
        sample.listMs.push(performance.now() - t);
        if ((l.Volumes as unknown[]).length !== v) throw new Error('List: wrong count');
        if (engine) {
          t = performance.now();
          const out = await engine.dockerOk(['volume', 'ls', '-q']);
          sample.dockerLsMs.push(performance.now() - t);
          if (out.trim().split('\n').length !== v) throw new Error(`docker volume ls: ${out.trim().split('\n').length} of ${v}`);
        }
      }
      for (let k = 0; k < PAIRS; k++) {
        const name = `v${String((k * 7919) % v).padStart(5, '0')}`;
        const id = `bench-${v}-${n}-${k}`;
        let t = performance.now();
        const m = await c.call('Mount', { Name: name, ID: id });
        sample.mountMs.push(performance.now() - t);
        if (m.Err) throw new Error(`Mount ${name}: ${m.Err}`);
        t = performance.now();
        const u = await c.call('Unmount', { Name: name, ID: id });
        sample.unmountMs.push(performance.now() - t);
        if (u.Err) throw new Error(`Unmount ${name}: ${u.Err}`);
      }
      c.close();
      samples.push(sample);
      progress(`${v} volumes, ${n} nodes: ${perNode(sample).toFixed(1)} ops/s per node; List p50 ${p(sample.listMs, 50).toFixed(1)} ms; Mount p99 ${p(sample.mountMs, 99).toFixed(1)} ms`);
      await save(false);
    }
  }
} finally {
  await cleanup();
}
await save(true);
process.stdout.write(report(true));
