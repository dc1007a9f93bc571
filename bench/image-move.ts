/**
 * The time to move a volume between two hosts through a shared pool: an image volume (ext4, its image on the share,
 * loop-attached by one host at a time) against an rwo directory volume on the same share. Two ferryd "hosts" on
 * this machine share a bind-mounted directory (the NAS); a move is the holder's Unmount (the image unmounted and
 * detached, the rwo lock given back) then the other host's Mount (lock, attach, mount), timed from the Unmount's
 * call to the Mount's answer at the plugin sockets, N rounds alternating direction, image and directory interleaved.
 * Prints a markdown report (machine, load, every sample) and writes it to bench/results/image-move-YYYY-MM-DD.md
 * (--no-write: print only).
 *   npm run build && node dist/bench/image-move.js [N=20] [--no-write]
 * Needs root, mount, losetup, mkfs.ext4 (as the integration tests).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, ROOT, run, type Ferryd } from '../test/helpers/ferryd.js';
import { mountBindShare } from '../test/helpers/shared-node.js';
import { percentile, median, pluginClient, onInterrupt, reporter, progressLog, loadAverage, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const noWrite = process.argv.includes('--no-write');
const N = Number(args[0] ?? 20);
if (!Number.isInteger(N) || N < 2) {
  console.error(`usage: node dist/bench/image-move.js [N=20] [--no-write]\nN must be an integer of at least 2, got ${JSON.stringify(args[0])}`);
  process.exit(2);
}
const DATA_MIB = 64;
const progress = progressLog('image-move');
const sh = shOut;
const load = loadAverage;

let base: string | undefined;
let share: string | undefined;
const nodes: Ferryd[] = [];
const cleanup = async () => {
  for (const f of nodes) await f.destroy().catch(() => undefined);
  if (base) {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
      const mp = line.split(' ')[4];
      if (mp?.startsWith(`${base}/`) && mp !== share) await run('umount', ['-l', mp]);
    }
    if (share) await run('umount', [share]);
    await rm(base, { recursive: true, force: true });
  }
};
onInterrupt(cleanup, progress);

const { out, emit } = reporter();
try {
  const loadStart = load();
  base = await mkdtemp(join(tmpdir(), 'ferry-bench-move-'));
  share = await mountBindShare(base);
  const exported = join(base, 'nas-export');
  for (const p of ['img', 'dir']) {
    await mkdir(join(share, p));
    await writeFile(join(share, p, '.ferry-pool'), 'bench share\n');
  }
  for (const node of ['nodeA', 'nodeB']) {
    const dir = join(base, node);
    await mkdir(dir);
    const config = [`node: ${node}`, 'heartbeatInterval: 1s', 'nodeTimeout: 10s', 'pools:', '  img:', '    kind: image', '    shared: true', `    path: ${join(share, 'img')}`, '  dir:', '    shared: true', `    path: ${join(share, 'dir')}`];
    await writeFile(join(dir, 'ferry.yaml'), config.join('\n'));
    nodes.push(await startFerryd({ dir, logLevel: 'info', extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node] }));
  }
  const [a, b] = nodes as [Ferryd, Ferryd];
  const clients = [pluginClient(a.pluginSocket), pluginClient(b.pluginSocket)];
  const call = async (i: number, method: string, body: Record<string, unknown>) => {
    const r = await clients[i]!.call(method, body);
    if (r.Err) throw new Error(`${method} on node ${'AB'[i]}: ${r.Err}`);
    return r;
  };
  await call(0, 'Create', { Name: 'mv-image', Opts: { pool: 'img', size: '256M' } });
  await call(0, 'Create', { Name: 'mv-dir', Opts: { pool: 'dir', access: 'rwo' } });
  // some data in each, so that the image's filesystem has something to replay and mount
  for (const v of ['mv-image', 'mv-dir']) {
    const mp = (await call(0, 'Mount', { Name: v, ID: 'fill' })).Mountpoint as string;
    await writeFile(join(mp, 'data.bin'), randomBytes(DATA_MIB * 2 ** 20));
    await call(0, 'Unmount', { Name: v, ID: 'fill' });
  }

  emit(`# Moving a volume between two hosts through a shared pool: image vs directory — ${new Date().toISOString().slice(0, 10)}`);
  emit();
  emit('| | |\n|---|---|');
  emit(`| commit | ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])} |`);
  emit(`| machine | ${sh('nproc', [])} cores, ${sh('uname', ['-r'])}, ${Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 1024 / 1024)} GiB; the share: a bind mount of a directory on ${sh('findmnt', ['-n', '-o', 'FSTYPE', '-T', exported])} |`);
  emit(`| volumes | image: ext4, 256 MiB, ${DATA_MIB} MiB of data; directory: access=rwo, ${DATA_MIB} MiB of data |`);
  emit(`| load average at start | ${loadStart} |`);
  emit(`| command | \`node dist/bench/image-move.js ${N}\` |`);
  emit();

  progress(`${N} moves of each volume, alternating A→B and B→A, image and directory interleaved`);
  const moveMs: Record<'image' | 'dir', number[]> = { image: [], dir: [] };
  const mountMs: Record<'image' | 'dir', number[]> = { image: [], dir: [] };
  for (const k of ['image', 'dir'] as const) await call(0, 'Mount', { Name: `mv-${k}`, ID: 'm0' });
  for (let i = 1; i <= N; i++) {
    const from = (i - 1) % 2;
    const to = i % 2;
    for (const k of ['image', 'dir'] as const) {
      const t = performance.now();
      await call(from, 'Unmount', { Name: `mv-${k}`, ID: `m${i - 1}` });
      const t1 = performance.now();
      await call(to, 'Mount', { Name: `mv-${k}`, ID: `m${i}` });
      const t2 = performance.now();
      moveMs[k].push(t2 - t);
      mountMs[k].push(t2 - t1);
    }
  }
  for (const k of ['image', 'dir'] as const) await call(N % 2, 'Unmount', { Name: `mv-${k}`, ID: `m${N}` });
  for (const c of clients) c.close();

  const p = (v: number[], q: number) => percentile([...v].sort((x, y) => x - y), q).toFixed(1);
  emit(`## Move time (${N} moves each): the holder's Unmount + the other host's Mount`);
  emit();
  emit('| volume | move p50 | move p90 | move max | of which Mount p50 | image/dir (p50) |\n|---|---|---|---|---|---|');
  for (const k of ['image', 'dir'] as const) {
    emit(`| ${k} | ${p(moveMs[k], 50)} ms | ${p(moveMs[k], 90)} ms | ${Math.max(...moveMs[k]).toFixed(1)} ms | ${p(mountMs[k], 50)} ms | ${k === 'image' ? `**${(median(moveMs.image) / median(moveMs.dir)).toFixed(1)}×**` : '1'} |`);
  }
  emit();
  emit('Every sample (ms), move image: ' + moveMs.image.map((x) => x.toFixed(1)).join(', '));
  emit();
  emit('Move dir: ' + moveMs.dir.map((x) => x.toFixed(1)).join(', '));
  emit();
  emit(`Load average at the end: ${load()}.`);
} finally {
  await cleanup();
}
const text = out.join('\n') + '\n';
process.stdout.write(text);
if (!noWrite) {
  const file = join(ROOT, 'bench', 'results', `image-move-${new Date().toISOString().slice(0, 10)}.md`);
  await writeFile(file, text);
  progress(`written: ${file}`);
}
