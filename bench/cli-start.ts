/**
 * What a `ferry` command costs before and around its one API call: `ferry --version` (process start-up and
 * module loading, no call) and `ferry volume ls` (the same plus one call) against Docker's CLI doing the
 * same (`docker --version`, `docker volume ls` against a private engine), and `node -e 0` (the floor every
 * Node program pays). Each side has as many volumes; rounds interleave every side in a rotating order.
 *   node dist/bench/cli-start.js [rounds=20] [volumes=50] [--before=PATH] [--no-docker] [--no-write]
 * `--before=PATH`: another build's bin/ferry, with its own ferryd, taking turns with this one.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startFerryd, unixRequest, FERRY_BIN, type Ferryd } from '../test/helpers/ferryd.js';
import { dockerHostPrerequisites, startDockerHost, type DockerHost } from '../test/helpers/dockerhost.js';
import { loadAverage, median, percentile, progressLog, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const count = (i: number, dflt: number, what: string): number => {
  const n = Number(args[i] ?? dflt);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`usage: node dist/bench/cli-start.js [rounds=20] [volumes=50] [--before=PATH] [--no-docker] [--no-write]\n${what} must be a positive integer, got ${JSON.stringify(args[i])}`);
    process.exit(2);
  }
  return n;
};
const ROUNDS = count(0, 20, 'rounds');
const VOLUMES = count(1, 50, 'volumes');
const beforeArg = process.argv.find((a) => a.startsWith('--before='))?.slice('--before='.length);
const noWrite = process.argv.includes('--no-write');
const withDocker = !process.argv.includes('--no-docker') && dockerHostPrerequisites().ok;
const progress = progressLog('cli-start');

/** Spawn to exit, with stdout read to its end (as a shell pipe would); throws on a non-zero exit. */
function timedRun(cmd: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; out: string }> {
  return new Promise((done, fail) => {
    const t = performance.now();
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', fail);
    child.on('close', (code) => {
      const ms = performance.now() - t;
      if (code !== 0) return fail(new Error(`${cmd} ${argv.join(' ')} exited with ${code}: ${Buffer.concat(err).toString().trim()}`));
      done({ ms, out: Buffer.concat(out).toString() });
    });
  });
}

interface Side {
  label: string;
  /** The commands, by column. */
  version: () => Promise<{ ms: number; out: string }>;
  ls: () => Promise<{ ms: number; out: string }>;
  samples: { version: number[]; ls: number[] };
}

const ferryds: Ferryd[] = [];
let engine: DockerHost | undefined;
const sides: Side[] = [];
const node = { run: () => timedRun(process.execPath, ['-e', '0']), samples: [] as number[] };
const loads = [`start ${loadAverage()}`];
try {
  const ferrySide = async (label: string, bin: string): Promise<Side> => {
    const f = await startFerryd({ logLevel: 'info', bin });
    ferryds.push(f);
    for (let i = 0; i < VOLUMES; i++) {
      const r = await unixRequest(f.apiSocket, 'POST', '/v1/volumes', JSON.stringify({ name: `v${i}` }), { 'content-type': 'application/json' });
      if (r.status !== 201) throw new Error(`create v${i}: ${r.status} ${r.text}`);
    }
    const run = (...a: string[]) => timedRun(process.execPath, [bin, '--api-socket', f.apiSocket, ...a]);
    return { label, version: () => run('--version'), ls: () => run('volume', 'ls'), samples: { version: [], ls: [] } };
  };
  progress(`starting ferryd${beforeArg ? ' (this build and the one before)' : ''} with ${VOLUMES} volumes each`);
  if (beforeArg) sides.push(await ferrySide('ferry before', resolve(beforeArg)));
  sides.push(await ferrySide('ferry', FERRY_BIN));
  if (withDocker) {
    progress(`starting a private Docker engine with ${VOLUMES} local volumes`);
    const e = (engine = await startDockerHost({ name: 'cli-start' }));
    for (let i = 0; i < VOLUMES; i++) await e.dockerOk(['volume', 'create', `v${i}`]);
    const env = { ...process.env, DOCKER_HOST: e.host, DOCKER_CONFIG: resolve(e.dir, 'client-config') };
    sides.push({ label: 'docker', version: () => timedRun('docker', ['--version'], env), ls: () => timedRun('docker', ['volume', 'ls'], env), samples: { version: [], ls: [] } });
  }
  // the answers are checked once: each ls lists every volume
  for (const s of sides) {
    const out = (await s.ls()).out;
    for (const v of ['v0', `v${VOLUMES - 1}`]) if (!new RegExp(`\\b${v}\\b`).test(out)) throw new Error(`${s.label} volume ls does not list ${v}:\n${out}`);
  }
  progress(`${ROUNDS} rounds`);
  for (let r = -1; r < ROUNDS; r++) {
    // a warm-up round (-1) first; the order rotates so that no side always follows another
    const k = ((r % sides.length) + sides.length) % sides.length;
    const order = [...sides.slice(k), ...sides.slice(0, k)];
    const n = (await node.run()).ms;
    if (r >= 0) node.samples.push(n);
    for (const s of order) {
      const v = (await s.version()).ms;
      const l = (await s.ls()).ms;
      if (r >= 0) {
        s.samples.version.push(v);
        s.samples.ls.push(l);
      }
    }
    if (r >= 0 && (r + 1) % 5 === 0) loads.push(`round ${r + 1}: ${loadAverage()}`);
  }
} finally {
  await Promise.allSettled(ferryds.map((f) => f.destroy()));
  await engine?.stop();
}
loads.push(`end ${loadAverage()}`);

const ms = (v: number) => `${v.toFixed(1)} ms`;
const sorted = (v: number[]) => [...v].sort((a, b) => a - b);
const out: string[] = [];
out.push(`# cli-start — a CLI command's cost: ferry against docker, ${new Date().toISOString()}\n`);
out.push(`\`node dist/bench/cli-start.js ${process.argv.slice(2).join(' ')}\`, ferry ${shOut('git', ['rev-parse', '--short', 'HEAD'])}${shOut('git', ['status', '--porcelain', 'src'])?.trim() ? ' (+ uncommitted src/)' : ''}${beforeArg ? `; before: ${beforeArg}` : ''}\n`);
out.push(`${shOut('nproc', [])} cores (${shOut('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])}), kernel ${shOut('uname', ['-r'])}, Node ${process.version}${withDocker ? `, ${shOut('docker', ['--version'])} (client) against a private dockerd` : ', no Docker engine (--no-docker or none here)'}`);
out.push(`${ROUNDS} rounds after a warm-up round, every side in each round in a rotating order; ${VOLUMES} volumes on each side. Each time is spawn to exit of the command, its output read to the end.\n`);
out.push(`load average (1/5/15 min): ${loads.join('; ')}\n`);
out.push('| command | median | p90 | min |');
out.push('|---|---|---|---|');
out.push(`| \`node -e 0\` (Node's own start-up) | ${ms(median(node.samples))} | ${ms(percentile(sorted(node.samples), 90))} | ${ms(Math.min(...node.samples))} |`);
for (const s of sides) {
  for (const [what, v] of [['--version', s.samples.version], ['volume ls', s.samples.ls]] as const) {
    out.push(`| \`${s.label.replace(' before', '')} ${what}\`${s.label.endsWith('before') ? ' (before)' : ''} | ${ms(median(v))} | ${ms(percentile(sorted(v), 90))} | ${ms(Math.min(...v))} |`);
  }
}
const by = (label: string) => sides.find((s) => s.label === label);
const ratios: string[] = [];
const ratioOf = (a: Side | undefined, b: Side | undefined, name: string) => {
  if (!a || !b) return;
  ratios.push(`- ${name}: \`--version\` ${(median(a.samples.version) / median(b.samples.version)).toFixed(3)}, \`volume ls\` ${(median(a.samples.ls) / median(b.samples.ls)).toFixed(3)}`);
};
ratioOf(by('ferry'), by('ferry before'), 'ferry after / before');
ratioOf(by('ferry'), by('docker'), 'ferry / docker');
if (ratios.length) out.push(`\nRatios of the medians:\n\n${ratios.join('\n')}`);
const f = by('ferry');
if (f) out.push(`\nferry's own start-up beyond Node's (median \`ferry --version\` − median \`node -e 0\`): ${ms(median(f.samples.version) - median(node.samples))}; its API call and table (\`volume ls\` − \`--version\`): ${ms(median(f.samples.ls) - median(f.samples.version))}.`);
out.push(`\n## Every sample (ms, in round order)\n`);
out.push(`- node -e 0: ${node.samples.map((v) => v.toFixed(1)).join(' ')}`);
for (const s of sides) {
  out.push(`- ${s.label} --version: ${s.samples.version.map((v) => v.toFixed(1)).join(' ')}`);
  out.push(`- ${s.label} volume ls: ${s.samples.ls.map((v) => v.toFixed(1)).join(' ')}`);
}
const report = out.join('\n') + '\n';
console.log(report);
if (!noWrite) {
  const file = `bench/results/cli-start-${new Date().toISOString().slice(0, 16).replace(':', '')}.md`;
  writeFileSync(file, report);
  progress(`written: ${file}`);
}
