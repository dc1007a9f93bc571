/**
 * How often a `docker run -v NAME` that meets dockerd's own shutdown leaves a `local` volume NAME beside
 * ferry's (src/docker/shadows.ts), by whether Docker's store held NAME: made by `ferry volume create` (not
 * stored), by `docker volume create -d ferry` in the engine's current life, or before its last restart.
 *
 *   npm run build && node dist/bench/docker-shadow.js [N=40] [--only-ferry-create] [--delay MIN-MAX (ms, default 20-80)]
 *
 * One private engine and one ferryd (test/helpers). N rounds of each kind, interleaved: start the run, SIGTERM
 * dockerd 20–80 ms later (uniform), start it again, look for a `local` volume of the name. Every sample is kept
 * in bench/results/docker-shadow-YYYY-MM-DDTHHMM.md. About 7 s per round on 2 cores. Needs root.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { startDockerHost } from '../test/helpers/dockerhost.js';
import { startFerryd, ROOT } from '../test/helpers/ferryd.js';
import { loadAverage, onInterrupt, progressLog, reporter, shOut } from './lib.js';

type Kind = 'ferry volume create' | 'docker, this life' | 'docker, before restart';
const onlyFerryCreate = process.argv.includes('--only-ferry-create');
const KINDS: Kind[] = onlyFerryCreate ? ['ferry volume create'] : ['ferry volume create', 'docker, this life', 'docker, before restart'];

const delayArg = process.argv.indexOf('--delay');
const [DELAY_MIN, DELAY_MAX] = delayArg > 0 ? process.argv[delayArg + 1]!.split('-').map(Number) as [number, number] : [20, 80];
const N = Number(process.argv.slice(2).find((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--delay') ?? 40);
const progress = progressLog('docker-shadow');
const { out, emit } = reporter();
const load0 = loadAverage();
const h = await startDockerHost({ name: 'shadow' });
const fdir = `/tmp/ferry-shadow-${process.pid}`;
const f = await startFerryd({ dir: fdir, pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, logLevel: 'info' });
const cleanup = async () => {
  await h.stop();
  await f.destroy();
  await rm(fdir, { recursive: true, force: true });
};
onInterrupt(cleanup, progress);

/** Wall-clock of each `ferry volume create` (a CLI process: node start-up, the API call and, since 2026-12-06, Docker's store). */
const createMs: number[] = [];
const samples: Array<{ kind: Kind; delayMs: number; runExit: number; error: string; shadow: boolean }> = [];
try {
  let stored: string[] = [];
  let seq = 0;
  for (let i = 0; i < N * KINDS.length; i++) {
    const kind = KINDS[i % KINDS.length]!;
    let name = `v${++seq}`;
    if (kind === 'ferry volume create') {
      // made, then used at once (since 2026-12-06 the create registers the name before it answers; before, only
      // ferryd's registration pass, every 5 s, stored it)
      const t0 = performance.now();
      const r = await f.cli('volume', 'create', name);
      createMs.push(performance.now() - t0);
      if (r.code !== 0) throw new Error(`ferry volume create: ${r.stderr}`);
    } else if (kind === 'docker, this life') {
      await h.dockerOk(['volume', 'create', '-d', 'ferry', name]);
    } else {
      if (!stored.length) {
        for (let j = 0; j < 8; j++) {
          const n = `p${++seq}`;
          await h.dockerOk(['volume', 'create', '-d', 'ferry', n]);
          stored.push(n);
        }
        await h.restart({ readyTimeoutMs: 120_000 });
      }
      name = stored.shift()!;
    }
    const delayMs = Math.round(DELAY_MIN + Math.random() * (DELAY_MAX - DELAY_MIN));
    const run = h.docker(['run', '--rm', '--network', 'none', '-v', `${name}:/d`, 'bb', 'true']);
    await new Promise((r) => setTimeout(r, delayMs));
    await h.restart({ readyTimeoutMs: 120_000 });
    const r = await run;
    const drivers = (await h.dockerOk(['volume', 'ls', '--filter', `name=^${name}$`, '--format', '{{.Driver}}'])).trim().split('\n');
    samples.push({ kind, delayMs, runExit: r.code ?? -1, error: r.code === 0 ? '' : (r.stderr.split('\n').find((l) => l.trim()) ?? '').slice(0, 100), shadow: drivers.includes('local') });
    if (i % 10 === 9) progress(`${i + 1} of ${N * KINDS.length}`);
  }
} finally {
  await cleanup();
}

const commit = shOut('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
emit(`# A \`docker run -v NAME\` met by dockerd's shutdown: does it leave a \`local\` NAME?`);
emit();
emit(`\`node dist/bench/docker-shadow.js ${process.argv.slice(2).join(' ')}\`, ferry ${commit}, ${new Date().toISOString()}`);
emit();
emit(`| machine | |\n|---|---|\n| cpu | ${cpus().length} × ${cpus()[0]?.model ?? '?'} |\n| engine | ${shOut('dockerd', ['--version'])} |\n| load at start / end | ${load0} / ${loadAverage()} |`);
emit();
emit('| how Docker knew the name | rounds | `local` twin left | run failed "database not open" |');
emit('|---|---|---|---|');
for (const k of KINDS) {
  const s = samples.filter((x) => x.kind === k);
  emit(`| ${k} | ${s.length} | ${s.filter((x) => x.shadow).length} | ${s.filter((x) => /database not open/.test(x.error)).length} |`);
}
emit();
if (createMs.length) {
  const sorted = [...createMs].sort((a, b) => a - b);
  emit(`\`ferry volume create\` wall-clock (CLI process included): median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms; every sample: ${createMs.map((m) => m.toFixed(0)).join(', ')} ms`);
  emit();
}
emit('Every round (delay: ms from the start of `docker run` to SIGTERM of dockerd):');
emit();
emit('| # | kind | delay ms | run exit | twin | error |');
emit('|---|---|---|---|---|---|');
samples.forEach((x, i) => emit(`| ${i + 1} | ${x.kind} | ${x.delayMs} | ${x.runExit} | ${x.shadow ? 'yes' : ''} | ${x.error.replace(/\|/g, '/')} |`));
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
const file = join(ROOT, 'bench', 'results', `docker-shadow-${new Date().toISOString().slice(0, 16).replace(/:/g, '')}.md`);
writeFileSync(file, out.join('\n') + '\n');
progress(`wrote ${file}`);
