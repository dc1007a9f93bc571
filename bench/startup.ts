/**
 * ferryd's start-up, two builds side by side (issue 17, item 4: ready ≤ 1 s at 10,000 volumes): for each size
 * (default 0 and 10,000 volumes, made through this build's plugin socket) both builds start on the same data
 * dir in turn, STARTS times each (default 8, after one warm-up start each), the order alternating every round.
 * Measured: spawn to the "ferryd ready" log line (polled every 2 ms) and the `startupMs` ferryd logs there;
 * SIGTERM 0.3 s after ready. BEFORE is another build's bin/ferry (an older commit's checkout, built).
 * Writes bench/results/startup-DATE-COMMIT.md (every sample, machine, load); --no-write prints only.
 *   npm run build && node dist/bench/startup.js --before=PATH [sizes=0,10000] [starts=8] [--no-write]
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { startFerryd, FERRY_BIN, ROOT, type Ferryd } from '../test/helpers/ferryd.js';
import { createVolumes, loadAverage, median, onInterrupt, progressLog, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const noWrite = process.argv.includes('--no-write');
const beforeArg = process.argv.find((a) => a.startsWith('--before='))?.slice('--before='.length);
const SIZES = (args[0] ?? '0,10000').split(',').map(Number);
const STARTS = Number(args[1] ?? 8);
if (!beforeArg || SIZES.some((n) => !Number.isInteger(n) || n < 0) || !Number.isInteger(STARTS) || STARTS < 1) {
  console.error('usage: node dist/bench/startup.js --before=PATH [sizes=0,10000] [starts=8] [--no-write]\nPATH: another build\'s bin/ferry');
  process.exit(2);
}
const builds = { before: resolve(beforeArg), after: FERRY_BIN };
type Build = keyof typeof builds;
const progress = progressLog('startup');

/** One start of BIN on the ferryd F's directories: spawn to "ferryd ready", and ferryd's own startupMs. */
async function startOnce(f: Ferryd, bin: string): Promise<{ ms: number; inside: number }> {
  const log = join(f.dir, 'startup.log');
  writeFileSync(log, '');
  const fd = openSync(log, 'a');
  const t0 = performance.now();
  const args = [bin, 'daemon', '--data-dir', f.dataDir, '--plugin-socket', f.pluginSocket, '--api-socket', f.apiSocket, '--node', 'test-node', '--docker-host', 'none', '--log-level', 'info'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise((res) => child.once('exit', res));
  let text = '';
  for (;;) {
    text = readFileSync(log, 'utf8');
    if (text.includes('"msg":"ferryd ready"')) break;
    if (child.exitCode !== null) throw new Error(`${bin} exited during start-up:\n${text}`);
    if (performance.now() - t0 > 30_000) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${bin} was not ready after 30 s:\n${text}`);
    }
    await new Promise((res) => setTimeout(res, 2));
  }
  const ms = performance.now() - t0;
  const inside = Number(/"startupMs":([0-9.]+)/.exec(text)?.[1]);
  await new Promise((res) => setTimeout(res, 300));
  child.kill('SIGTERM');
  await exited;
  return { ms, inside };
}

interface Row {
  volumes: number;
  samples: Record<Build, Array<{ ms: number; inside: number }>>;
  loads: string[];
}

let f: Ferryd | undefined;
onInterrupt(async () => f?.destroy(), progress);
const rows: Row[] = [];
const loadStart = loadAverage();
try {
  for (const n of SIZES) {
    progress(`${n} volumes: creating`);
    f = await startFerryd({ logLevel: 'info' });
    await createVolumes(f.pluginSocket, n);
    await f.stop();
    const row: Row = { volumes: n, samples: { before: [], after: [] }, loads: [] };
    await startOnce(f, builds.before);
    await startOnce(f, builds.after);
    for (let r = 0; r < STARTS; r++) {
      row.loads.push(loadAverage().split(' ')[0]!);
      const order: Build[] = r % 2 ? ['after', 'before'] : ['before', 'after'];
      for (const b of order) row.samples[b].push(await startOnce(f, builds[b]));
      progress(`${n} volumes: round ${r + 1}/${STARTS}`);
    }
    rows.push(row);
    await f.destroy();
    f = undefined;
  }
} finally {
  await f?.destroy();
}

const lines: string[] = [];
const emit = (s = '') => {
  lines.push(s);
  console.log(s);
};
const commitOf = (bin: string) => shOut('git', ['-C', resolve(dirname(bin), '..'), 'rev-parse', '--short', 'HEAD']);
const commit = commitOf(builds.after);
const ms = (v: number) => `${v.toFixed(0)} ms`;
emit(`# ferryd start-up, two builds interleaved (${new Date().toISOString()})`);
emit();
emit('| | |');
emit('|---|---|');
emit(`| before | ${commitOf(builds.before)} (${builds.before}) |`);
emit(`| after | ${commit} (${builds.after}) |`);
emit(`| machine | ${shOut('nproc', [])} cores (${shOut('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).trim()}), ${shOut('uname', ['-r'])}, Node ${process.version}, data dir on ${shOut('findmnt', ['-n', '-o', 'FSTYPE', '-T', '/tmp'])} |`);
emit(`| load average | ${loadStart} at the start, ${loadAverage()} at the end |`);
emit(`| method | ${STARTS} starts of each build per size after one warm-up each, order alternating per round; spawn → "ferryd ready" (log polled every 2 ms); SIGTERM 0.3 s after ready |`);
emit();
emit('| volumes | before: spawn → ready (median) | after | after/before | before: startupMs (median) | after |');
emit('|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const m = (b: Build, k: 'ms' | 'inside') => median(r.samples[b].map((s) => s[k]));
  emit(`| ${r.volumes} | ${ms(m('before', 'ms'))} | ${ms(m('after', 'ms'))} | **${(m('after', 'ms') / m('before', 'ms')).toFixed(2)}** | ${ms(m('before', 'inside'))} | ${ms(m('after', 'inside'))} |`);
}
emit();
emit('Every sample, spawn → ready / startupMs in ms, in the order taken:');
emit();
for (const r of rows) {
  emit(`- ${r.volumes} volumes, load (1 min) before each round ${r.loads.join(', ')}`);
  for (const b of ['before', 'after'] as const) emit(`  - ${b}: ${r.samples[b].map((s) => `${s.ms.toFixed(0)}/${s.inside.toFixed(0)}`).join(', ')}`);
}
if (!noWrite) {
  const file = join(ROOT, 'bench', 'results', `startup-${new Date().toISOString().slice(0, 10)}-${commit}.md`);
  writeFileSync(file, lines.join('\n') + '\n');
  console.log(`\nwritten: ${file}`);
}
