/**
 * What idle ferryd nodes cost a NAS: the file operations each node puts on a shared pool per second when
 * nobody uses a volume (heartbeats, catalog syncs, attachments, references), counted where the NAS sees
 * them — at the GlusterFS brick (`gluster volume profile`) — for several node and volume counts.
 *
 *   npm run build && node dist/bench/share-idle.js [--nodes 2,5,10] [--volumes 1000,5000] [--seconds 60] [--heartbeat 5s] [--no-write]
 *
 * One GlusterFS server in its own network namespace (test/helpers/gluster-local.ts); each node is a real
 * ferryd (no Docker: `--docker-host none`) with its own FUSE mount of the volume, as separate hosts would
 * have. Counts do not depend on the machine's speed; the machine and load are recorded anyway.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalGluster, type LocalGluster } from '../test/helpers/gluster-local.js';
import { startFerryd, type Ferryd } from '../test/helpers/ferryd.js';
import { onInterrupt, pluginClient, reporter } from './lib.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const NODES = arg('--nodes', '2,5,10').split(',').map(Number);
const VOLUMES = arg('--volumes', '1000,5000').split(',').map(Number);
const SECONDS = Number(arg('--seconds', '60'));
const HEARTBEAT = arg('--heartbeat', '5s');
const progress = (m: string) => console.error(`[share-idle] ${m}`);

interface Sample {
  nodes: number;
  volumes: number;
  seconds: number;
  /** FOP name → calls at the brick during the idle window. */
  fops: Record<string, number>;
}

/** Parse `gluster volume profile VOL info cumulative`: the brick's calls per FOP. */
function parseProfile(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+ [mun]s\s+[\d.]+ [mun]s\s+[\d.]+ [mun]s\s+(\d+)\s+([A-Z_]+)\s*$/.exec(line);
    if (m) out[m[2]!] = (out[m[2]!] ?? 0) + Number(m[1]);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(g: LocalGluster, base: string, nodes: number, volumes: number): Promise<Sample> {
  const dir = await mkdtemp(join(base, `n${nodes}-v${volumes}-`));
  const mounts: string[] = [];
  const daemons: Ferryd[] = [];
  try {
    // a fresh, empty GlusterFS directory per configuration: the pool lives in a subdirectory of the volume
    const poolName = `pool-${nodes}-${volumes}`;
    for (let i = 0; i < nodes; i++) {
      const mp = join(dir, `mnt${i}`);
      await mkdir(mp, { recursive: true });
      await g.mount(mp);
      mounts.push(mp);
    }
    await mkdir(join(mounts[0]!, poolName), { recursive: true });
    await writeFile(join(mounts[0]!, poolName, '.ferry-pool'), 'share-idle bench\n');
    for (let i = 0; i < nodes; i++) {
      const node = `node${i}`;
      const ndir = join(dir, node);
      await mkdir(ndir, { recursive: true });
      const yaml = [`node: ${node}`, `heartbeatInterval: ${HEARTBEAT}`, 'nodeTimeout: 60s', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${join(mounts[i]!, poolName)}`, '    shared: true'].join('\n');
      await writeFile(join(ndir, 'ferry.yaml'), yaml);
      daemons.push(await startFerryd({ dir: ndir, logLevel: 'info', extraArgs: ['--config', join(ndir, 'ferry.yaml'), '--node', node] }));
    }
    progress(`${nodes} nodes up; creating ${volumes} volumes`);
    const c = pluginClient(daemons[0]!.pluginSocket);
    for (let i = 0; i < volumes; i += 32) {
      await Promise.all(
        Array.from({ length: Math.min(32, volumes - i) }, async (_, j) => {
          const r = await c.call('Create', { Name: `v${i + j}` });
          if (r.Err) throw new Error(`Create v${i + j}: ${r.Err}`);
        }),
      );
    }
    c.close();
    // every node learns the catalog (List syncs), then settles for three heartbeats
    for (const d of daemons) {
      const r = await pluginClient(d.pluginSocket).call('List', {});
      if ((r.Volumes as unknown[]).length !== volumes) throw new Error(`a node lists ${(r.Volumes as unknown[]).length} of ${volumes} volumes`);
    }
    // three heartbeats, and one background usage pass (every 30 s), which walks the new volumes once: the
    // window then shows what idle nodes cost for as long as they stay idle
    await sleep(3 * parseHeartbeatMs(HEARTBEAT) + 35_000);
    const cli = (a: string[]) => g.gluster.cli(['volume', 'profile', g.gluster.volume, ...a]);
    await cli(['info', 'clear']);
    progress(`idle for ${SECONDS} s`);
    await sleep(SECONDS * 1000);
    const r = await cli(['info', 'cumulative']);
    if (r.code !== 0) throw new Error(`gluster volume profile info: ${r.stderr || r.stdout}`);
    return { nodes, volumes, seconds: SECONDS, fops: parseProfile(r.stdout) };
  } finally {
    for (const d of daemons) await d.destroy().catch(() => undefined);
    for (const mp of mounts) await g.unmount(mp).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

function parseHeartbeatMs(s: string): number {
  const m = /^(\d+)(ms|s)$/.exec(s);
  if (!m) throw new Error(`--heartbeat ${s}: give e.g. 5s or 500ms`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

const { out, emit } = reporter();
const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
const base = await mkdtemp(join(tmpdir(), 'ferry-bench-idle-'));
let g: LocalGluster | undefined;
const cleanup = async () => {
  await g?.stop().catch(() => undefined);
  await rm(base, { recursive: true, force: true });
};
onInterrupt(cleanup, progress);
const samples: Sample[] = [];
try {
  parseHeartbeatMs(HEARTBEAT);
  g = await startLocalGluster();
  const s = await g.gluster.cli(['volume', 'profile', g.gluster.volume, 'start']);
  if (s.code !== 0) throw new Error(`gluster volume profile start: ${s.stderr || s.stdout}`);
  for (const v of VOLUMES) for (const n of NODES) samples.push(await measure(g, base, n, v));
} finally {
  await cleanup();
}

const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
const dirty = execFileSync('git', ['status', '--porcelain', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim();
emit(`# Idle nodes on a shared pool: file operations at the NAS (GlusterFS brick)`);
emit();
emit(`| | |`);
emit(`|---|---|`);
emit(`| commit | ${commit}${dirty ? ' (with uncommitted changes in src/)' : ''} |`);
emit(`| date | ${new Date().toISOString()} |`);
emit(`| nproc | ${cpus().length} (${cpus()[0]?.model ?? '?'}) |`);
emit(`| load average | ${load0} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end |`);
emit(`| heartbeatInterval | ${HEARTBEAT} |`);
emit(`| idle window | ${SECONDS} s per configuration, after three heartbeats and one usage pass (35 s) of settling |`);
emit(`| command | \`node dist/bench/share-idle.js ${args.join(' ')}\` |`);
emit();
const fops = [...new Set(samples.flatMap((s) => Object.keys(s.fops)))].sort();
const total = (s: Sample) => Object.values(s.fops).reduce((a, b) => a + b, 0);
emit(`## Operations per second per node (all FOPs at the brick / nodes / seconds)`);
emit();
emit(`| volumes | nodes | total ops in window | ops/s (all nodes) | ops/s per node | ops/s per node per 1,000 volumes |`);
emit(`|---:|---:|---:|---:|---:|---:|`);
for (const s of samples) {
  const perNode = total(s) / s.seconds / s.nodes;
  emit(`| ${s.volumes} | ${s.nodes} | ${total(s)} | ${(total(s) / s.seconds).toFixed(1)} | ${perNode.toFixed(1)} | ${((perNode * 1000) / s.volumes).toFixed(2)} |`);
}
emit();
emit(`## Every sample: calls per FOP in the window`);
emit();
emit(`| volumes | nodes | ${fops.join(' | ')} |`);
emit(`|---:|---:|${fops.map(() => '---:').join('|')}|`);
for (const s of samples) emit(`| ${s.volumes} | ${s.nodes} | ${fops.map((f) => s.fops[f] ?? 0).join(' | ')} |`);
emit();
if (!args.includes('--no-write')) {
  const file = join(ROOT, 'bench', 'results', `share-idle-${new Date().toISOString().slice(0, 10)}-${commit}.md`);
  await writeFile(file, out.join('\n') + '\n');
  progress(`written to ${file}`);
}
