/**
 * GET /v1/volumes with N volumes (default 10,000; issue 17 goal 4: ≤ 20 ms): the full list against the list
 * form (`?view=list`, what `ferry volume ls` and the UI ask), each call timed whole on the client, its
 * alone and with the client's JSON.parse, the two forms interleaved call by call, ROUNDS rounds of 10 calls each,
 * answered from the kept answer and made again after a change (a volume created before the call).
 *   node dist/bench/list-view.js [volumes=10000] [rounds=5] [--no-write]
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { startFerryd, unixRequest } from '../test/helpers/ferryd.js';
import { loadAverage, median, pluginClient, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const N = Number(args[0] ?? 10_000);
const ROUNDS = Number(args[1] ?? 5);
const noWrite = process.argv.includes('--no-write');
const CALLS = 10;
const PATHS = { full: '/v1/volumes', list: '/v1/volumes?view=list' } as const;

const f = await startFerryd({ logLevel: 'info' });
/** Per form and kind (`cached`: nothing changed since the last call; `made`: a volume was created just before), a list of samples per round. */
type Kind = 'cached' | 'made';
const empty = () => ({ full: [] as Sample[][], list: [] as Sample[][] });
interface Sample {
  /** From the request to the answer's last byte. */
  wire: number;
  /** The same plus the client's toString and JSON.parse. */
  ms: number;
}
const samples: Record<Kind, ReturnType<typeof empty>> = { cached: empty(), made: empty() };
const parse = { full: [] as number[], list: [] as number[] };
const bytes = { full: 0, list: 0 };
const loads: string[] = [];
let count = N;
try {
  const c = pluginClient(f.pluginSocket);
  for (let k = 0; k < N; k += 64) {
    await Promise.all(Array.from({ length: Math.min(64, N - k) }, async (_, j) => {
      const r = await c.call('Create', { Name: `v${String(k + j).padStart(5, '0')}` });
      if (r.Err) throw new Error(`Create: ${r.Err}`);
    }));
  }
  // the first usage pass fills in every volume's figures: measure once it is done (a quiet ferryd)
  for (const t0 = performance.now(); ; ) {
    const a = await unixRequest(f.apiSocket, 'GET', PATHS.list);
    if (!a.text.includes('"snapshotNote":"not measured yet"')) break;
    if (performance.now() - t0 > 120_000) throw new Error('the first usage pass was not done after 120 s');
    await new Promise((r) => setTimeout(r, 500));
  }
  loads.push(`start ${loadAverage()}`);
  // (its own client: the test helper's request parses every answer itself, which timed a second JSON.parse)
  const get = (view: 'full' | 'list') =>
    new Promise<{ ms: number; wire: number; text: string }>((resolve, reject) => {
      const t = performance.now();
      const req = request({ socketPath: f.apiSocket, path: PATHS[view], agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const wire = performance.now() - t;
          const text = Buffer.concat(chunks).toString('utf8');
          const body = JSON.parse(text) as { volumes: unknown[] };
          const ms = performance.now() - t;
          if (res.statusCode !== 200 || body.volumes.length !== count) return reject(new Error(`GET ${PATHS[view]}: ${res.statusCode}, ${body.volumes.length} volumes, not ${count}`));
          bytes[view] = Buffer.byteLength(text);
          resolve({ ms, wire, text });
        });
      });
      req.on('error', reject);
      req.end();
    });
  await get('full');
  await get('list'); // warm-up: both answers made and cached
  for (let r = 0; r < ROUNDS; r++) {
    const round = { cached: { full: [] as Sample[], list: [] as Sample[] }, made: { full: [] as Sample[], list: [] as Sample[] } };
    for (let i = 0; i < CALLS; i++) {
      const order = (i + r) % 2 === 0 ? (['full', 'list'] as const) : (['list', 'full'] as const);
      for (const view of order) {
        const { ms, wire, text } = await get(view);
        round.cached[view].push({ ms, wire });
        if (i === 0) {
          const t = performance.now();
          JSON.parse(text);
          parse[view].push(performance.now() - t);
        }
      }
      // one more volume: the next call of each form makes its answer again (a UI's poll after a change)
      const made = await c.call('Create', { Name: `w${r}-${i}` });
      if (made.Err) throw new Error(`Create: ${made.Err}`);
      count++;
      for (const view of order) {
        const { ms, wire } = await get(view);
        round.made[view].push({ ms, wire });
      }
    }
    for (const kind of ['cached', 'made'] as const) for (const view of ['full', 'list'] as const) samples[kind][view].push(round[kind][view]);
    loads.push(`round ${r + 1}: ${loadAverage()}`);
  }
  c.close();
} finally {
  await f.destroy();
}
loads.push(`end ${loadAverage()}`);

const fmt = (v: number) => v.toFixed(2);
const out: string[] = [];
out.push(`# list-view — GET /v1/volumes with ${N} volumes: full list against \`?view=list\`\n`);
out.push(`commit ${shOut('git', ['rev-parse', '--short', 'HEAD'])}${shOut('git', ['status', '--porcelain', 'src'])?.trim() ? ' (+ uncommitted src/)' : ''}, ${shOut('nproc', [])} cores, kernel ${shOut('uname', ['-r'])}, Node ${process.version}; each call on a new connection to the API socket; ${ROUNDS} rounds of ${CALLS} cached and ${CALLS} made calls per form, interleaved call by call (order alternating), after the first usage pass and one warm-up call each.\n`);
out.push(`load average (1/5/15 min): ${loads.join('; ')}\n`);
out.push('Two times per call: **wire**, from the request to the last byte of the answer (what ferryd and the socket cost), and **with parse**, the same plus the client\'s `toString` and `JSON.parse` (what a Node client such as the CLI waits). *Cached*: nothing changed since the last call, the answer is sent as it was kept; *made*: a volume was created just before, the answer is made again.\n');
out.push('| form | bytes | answer | wire p50 | with parse p50 | round medians (wire / with parse) | JSON.parse alone |\n|---|---|---|---|---|---|---|');
const p50 = (rounds: Sample[][], f: (s: Sample) => number) => median(rounds.map((s) => median(s.map(f))));
for (const view of ['full', 'list'] as const) {
  for (const kind of ['cached', 'made'] as const) {
    const rounds = samples[kind][view];
    const rm = rounds.map((s) => `${fmt(median(s.map((x) => x.wire)))} / ${fmt(median(s.map((x) => x.ms)))}`);
    out.push(`| ${PATHS[view]} | ${(bytes[view] / 1e6).toFixed(2)} MB | ${kind} | **${fmt(p50(rounds, (x) => x.wire))} ms** | **${fmt(p50(rounds, (x) => x.ms))} ms** | ${rm.join(', ')} | ${kind === 'cached' ? `${fmt(median(parse[view]))} ms` : ''} |`);
  }
}
const ratio = p50(samples.cached.list, (x) => x.ms) / p50(samples.cached.full, (x) => x.ms);
out.push(`\nlist/full (cached, with parse): ${ratio.toFixed(3)} (bytes ${(bytes.list / bytes.full).toFixed(3)})\n\n## Every sample (ms, wire / with parse)\n`);
for (const kind of ['cached', 'made'] as const) for (const view of ['full', 'list'] as const) samples[kind][view].forEach((s, i) => out.push(`- ${view} ${kind} round ${i + 1}: ${s.map((x) => `${fmt(x.wire)}/${fmt(x.ms)}`).join(' ')}`));
const report = out.join('\n') + '\n';
console.log(report);
if (!noWrite) {
  const file = `bench/results/list-view-${new Date().toISOString().slice(0, 16).replace(':', '')}.md`;
  writeFileSync(file, report);
  console.error(`written: ${file}`);
}
