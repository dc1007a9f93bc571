/**
 * GET /v1/volumes with N volumes (default 10,000; issue 17 goal 4: ≤ 20 ms): the full list against the list
 * form (`?view=list`, what `ferry volume ls` and the UI ask), each call timed whole on the client, its
 * JSON.parse included, the two forms interleaved call by call, ROUNDS rounds of 10 calls each.
 *   node dist/bench/list-view.js [volumes=10000] [rounds=5] [--no-write]
 */
import { writeFileSync } from 'node:fs';
import { startFerryd, unixRequest } from '../test/helpers/ferryd.js';
import { loadAverage, median, pluginClient, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const N = Number(args[0] ?? 10_000);
const ROUNDS = Number(args[1] ?? 5);
const noWrite = process.argv.includes('--no-write');
const CALLS = 10;
const PATHS = { full: '/v1/volumes', list: '/v1/volumes?view=list' } as const;

const f = await startFerryd({ logLevel: 'info' });
const samples = { full: [] as number[][], list: [] as number[][] };
const parse = { full: [] as number[], list: [] as number[] };
const bytes = { full: 0, list: 0 };
const loads: string[] = [];
try {
  const c = pluginClient(f.pluginSocket);
  for (let k = 0; k < N; k += 64) {
    await Promise.all(Array.from({ length: Math.min(64, N - k) }, async (_, j) => {
      const r = await c.call('Create', { Name: `v${String(k + j).padStart(5, '0')}` });
      if (r.Err) throw new Error(`Create: ${r.Err}`);
    }));
  }
  c.close();
  // the first usage pass fills in every volume's figures: measure once it is done (a quiet ferryd)
  for (const t0 = performance.now(); ; ) {
    const a = await unixRequest(f.apiSocket, 'GET', PATHS.list);
    if (!a.text.includes('"snapshotNote":"not measured yet"')) break;
    if (performance.now() - t0 > 120_000) throw new Error('the first usage pass was not done after 120 s');
    await new Promise((r) => setTimeout(r, 500));
  }
  loads.push(`start ${loadAverage()}`);
  const get = async (view: 'full' | 'list') => {
    const t = performance.now();
    const a = await unixRequest(f.apiSocket, 'GET', PATHS[view]);
    const body = JSON.parse(a.text) as { volumes: unknown[] };
    const ms = performance.now() - t;
    if (a.status !== 200 || body.volumes.length !== N) throw new Error(`GET ${PATHS[view]}: ${a.status}, ${body.volumes.length} volumes`);
    bytes[view] = Buffer.byteLength(a.text);
    return { ms, text: a.text };
  };
  await get('full');
  await get('list'); // warm-up: both answers made and cached
  for (let r = 0; r < ROUNDS; r++) {
    const round = { full: [] as number[], list: [] as number[] };
    for (let i = 0; i < CALLS; i++) {
      for (const view of (i + r) % 2 === 0 ? (['full', 'list'] as const) : (['list', 'full'] as const)) {
        const { ms, text } = await get(view);
        round[view].push(ms);
        if (i === 0) {
          const t = performance.now();
          JSON.parse(text);
          parse[view].push(performance.now() - t);
        }
      }
    }
    samples.full.push(round.full);
    samples.list.push(round.list);
    loads.push(`round ${r + 1}: ${loadAverage()}`);
  }
} finally {
  await f.destroy();
}
loads.push(`end ${loadAverage()}`);

const fmt = (v: number) => v.toFixed(2);
const out: string[] = [];
out.push(`# list-view — GET /v1/volumes with ${N} volumes: full list against \`?view=list\`\n`);
out.push(`commit ${shOut('git', ['rev-parse', '--short', 'HEAD'])}${shOut('git', ['status', '--porcelain', 'src'])?.trim() ? ' (+ uncommitted src/)' : ''}, ${shOut('nproc', [])} cores, kernel ${shOut('uname', ['-r'])}, Node ${process.version}; each call on a new connection to the API socket, timed from the request to the end of the client's JSON.parse; ${ROUNDS} rounds of ${CALLS} calls per form, interleaved call by call (order alternating), after the first usage pass and one warm-up call each.\n`);
out.push(`load average (1/5/15 min): ${loads.join('; ')}\n`);
out.push('| form | bytes | call p50 (median of round medians) | round medians | JSON.parse alone (median) |\n|---|---|---|---|---|');
for (const view of ['full', 'list'] as const) {
  const rm = samples[view].map((s) => median(s));
  out.push(`| ${PATHS[view]} | ${(bytes[view] / 1e6).toFixed(2)} MB | **${fmt(median(rm))} ms** | ${rm.map(fmt).join(', ')} | ${fmt(median(parse[view]))} ms |`);
}
const ratio = median(samples.list.map((s) => median(s))) / median(samples.full.map((s) => median(s)));
out.push(`\nlist/full: ${ratio.toFixed(3)} (bytes ${(bytes.list / bytes.full).toFixed(3)})\n\n## Every sample (ms)\n`);
for (const view of ['full', 'list'] as const) samples[view].forEach((s, i) => out.push(`- ${view} round ${i + 1}: ${s.map(fmt).join(' ')}`));
const report = out.join('\n') + '\n';
console.log(report);
if (!noWrite) {
  const file = `bench/results/list-view-${new Date().toISOString().slice(0, 16).replace(':', '')}.md`;
  writeFileSync(file, report);
  console.error(`written: ${file}`);
}
