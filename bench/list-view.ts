/**
 * GET /v1/volumes with N volumes (default 10,000; issue 17 goal 4: ≤ 20 ms): the full list against the list
 * form (`?view=list`, what `ferry volume ls` and the UI ask), each call timed on the client to the answer's last
 * byte and again with the client's JSON.parse, the two forms interleaved call by call, ROUNDS rounds of 10
 * calls each, in three kinds: the kept answer (nothing changed), the answer after a Mount or Unmount of one
 * volume, and after a create. With --before=PATH, another build's bin/ferry runs beside this one with as many
 * volumes, the two taking turns call by call.
 *   node dist/bench/list-view.js [volumes=10000] [rounds=5] [--before=PATH] [--no-write]
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../test/helpers/ferryd.js';
import { loadAverage, median, pluginClient, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const N = Number(args[0] ?? 10_000);
const ROUNDS = Number(args[1] ?? 5);
const noWrite = process.argv.includes('--no-write');
const beforeArg = process.argv.find((a) => a.startsWith('--before='))?.slice('--before='.length);
const CALLS = 10;
const PATHS = { full: '/v1/volumes', list: '/v1/volumes?view=list' } as const;
type View = keyof typeof PATHS;
/** `cached`: nothing changed since the last call; `mount`: one volume was mounted or unmounted just before; `made`: a volume was created just before. */
const KINDS = ['cached', 'mount', 'made'] as const;
type Kind = (typeof KINDS)[number];
interface Sample {
  /** From the request to the answer's last byte. */
  wire: number;
  /** The same plus the client's toString and JSON.parse. */
  ms: number;
}

interface Side {
  label: string;
  bin?: string;
  f?: Ferryd;
  client?: ReturnType<typeof pluginClient>;
  count: number;
  /** samples[kind][view][round] */
  samples: Record<Kind, Record<View, Sample[][]>>;
  parse: Record<View, number[]>;
  bytes: Record<View, number>;
}
const side = (label: string, bin?: string): Side => ({
  label,
  ...(bin ? { bin } : {}),
  count: N,
  samples: Object.fromEntries(KINDS.map((k) => [k, { full: [], list: [] }])) as unknown as Side['samples'],
  parse: { full: [], list: [] },
  bytes: { full: 0, list: 0 },
});
const sides: Side[] = [side('this build'), ...(beforeArg ? [side('before', resolve(beforeArg))] : [])];
const loads: string[] = [];

/** One GET on a new connection: wire time, and with the client's parse. */
const get = (s: Side, view: View) =>
  new Promise<{ ms: number; wire: number; text: string }>((ok, fail) => {
    const t = performance.now();
    // (its own client: the test helper's request parses every answer itself, which timed a second JSON.parse)
    const req = request({ socketPath: s.f!.apiSocket, path: PATHS[view], agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const wire = performance.now() - t;
        const text = Buffer.concat(chunks).toString('utf8');
        const body = JSON.parse(text) as { volumes: unknown[] };
        const ms = performance.now() - t;
        if (res.statusCode !== 200 || body.volumes.length !== s.count) return fail(new Error(`${s.label}: GET ${PATHS[view]}: ${res.statusCode}, ${body.volumes.length} volumes, not ${s.count}`));
        s.bytes[view] = Buffer.byteLength(text);
        ok({ ms, wire, text });
      });
    });
    req.on('error', fail);
    req.end();
  });
const call = async (s: Side, method: string, body: Record<string, unknown>) => {
  const r = await s.client!.call(method, body);
  if (r.Err) throw new Error(`${s.label}: ${method}: ${r.Err}`);
};

try {
  for (const s of sides) {
    s.f = await startFerryd({ logLevel: 'info', ...(s.bin ? { bin: s.bin } : {}) });
    s.client = pluginClient(s.f.pluginSocket);
    for (let k = 0; k < N; k += 64) await Promise.all(Array.from({ length: Math.min(64, N - k) }, (_, j) => call(s, 'Create', { Name: `v${String(k + j).padStart(5, '0')}` })));
  }
  // the first usage pass fills in every volume's figures: measure once it is done (a quiet ferryd)
  for (const s of sides) {
    for (const t0 = performance.now(); ; ) {
      const a = await unixRequest(s.f!.apiSocket, 'GET', PATHS.list);
      if (!a.text.includes('"snapshotNote":"not measured yet"')) break;
      if (performance.now() - t0 > 180_000) throw new Error(`${s.label}: the first usage pass was not done after 180 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const view of ['full', 'list'] as const) await get(s, view); // warm-up: both answers made and kept
  }
  loads.push(`start ${loadAverage()}`);
  for (let r = 0; r < ROUNDS; r++) {
    const round = sides.map(() => Object.fromEntries(KINDS.map((k) => [k, { full: [] as Sample[], list: [] as Sample[] }])) as Record<Kind, Record<View, Sample[]>>);
    for (let i = 0; i < CALLS; i++) {
      const views = (i + r) % 2 === 0 ? (['full', 'list'] as const) : (['list', 'full'] as const);
      const order = sides.map((_, j) => j);
      if ((i + r) % 2 === 1) order.reverse();
      for (const kind of KINDS) {
        for (const j of order) {
          const s = sides[j]!;
          // the change before the call: a Mount (even calls) or its Unmount; a new volume
          if (kind === 'mount') await call(s, i % 2 === 0 ? 'Mount' : 'Unmount', { Name: `v${String((r * 37) % N).padStart(5, '0')}`, ID: `bench-${r}` });
          if (kind === 'made') (await call(s, 'Create', { Name: `w${r}-${i}` }), s.count++);
          for (const view of views) {
            const { ms, wire, text } = await get(s, view);
            round[j]![kind][view].push({ ms, wire });
            if (kind === 'cached' && i === 0) {
              const t = performance.now();
              JSON.parse(text);
              s.parse[view].push(performance.now() - t);
            }
          }
        }
      }
    }
    sides.forEach((s, j) => {
      for (const kind of KINDS) for (const view of ['full', 'list'] as const) s.samples[kind][view].push(round[j]![kind][view]);
    });
    loads.push(`round ${r + 1}: ${loadAverage()}`);
  }
} finally {
  for (const s of sides) {
    s.client?.close();
    await s.f?.destroy();
  }
}
loads.push(`end ${loadAverage()}`);

const fmt = (v: number) => v.toFixed(2);
const p50 = (rounds: Sample[][], f: (s: Sample) => number) => median(rounds.map((s) => median(s.map(f))));
const out: string[] = [];
out.push(`# list-view — GET /v1/volumes with ${N} volumes: full list against \`?view=list\`\n`);
out.push(`commit ${shOut('git', ['rev-parse', '--short', 'HEAD'])}${shOut('git', ['status', '--porcelain', 'src'])?.trim() ? ' (+ uncommitted src/)' : ''}${beforeArg ? `, before: ${resolve(beforeArg)} (${shOut('git', ['-C', resolve(beforeArg, '..'), 'rev-parse', '--short', 'HEAD'])})` : ''}, ${shOut('nproc', [])} cores, kernel ${shOut('uname', ['-r'])}, Node ${process.version}; each call on a new connection to the API socket; ${ROUNDS} rounds of ${CALLS} calls of each kind per form${sides.length > 1 ? ' and side' : ''}, interleaved call by call (order alternating), after the first usage pass and one warm-up call each.\n`);
out.push(`load average (1/5/15 min): ${loads.join('; ')}\n`);
out.push('Two times per call: **wire**, from the request to the last byte of the answer (what ferryd and the socket cost), and **with parse**, the same plus the client\'s `toString` and `JSON.parse` (what a Node client such as the CLI waits). *cached*: nothing changed since the last call, the answer is sent as it was kept; *mount*: one volume was mounted (or unmounted) just before; *made*: a volume was created just before.\n');
out.push('| side | form | bytes | answer | wire p50 | with parse p50 | round medians (wire / with parse) | JSON.parse alone |\n|---|---|---|---|---|---|---|---|');
for (const s of sides) {
  for (const view of ['full', 'list'] as const) {
    for (const kind of KINDS) {
      const rounds = s.samples[kind][view];
      const rm = rounds.map((x) => `${fmt(median(x.map((y) => y.wire)))} / ${fmt(median(x.map((y) => y.ms)))}`);
      out.push(`| ${s.label} | ${PATHS[view]} | ${(s.bytes[view] / 1e6).toFixed(2)} MB | ${kind} | **${fmt(p50(rounds, (x) => x.wire))} ms** | **${fmt(p50(rounds, (x) => x.ms))} ms** | ${rm.join(', ')} | ${kind === 'cached' ? `${fmt(median(s.parse[view]))} ms` : ''} |`);
    }
  }
}
if (sides.length > 1) {
  out.push('\nthis build / before (wire p50):');
  for (const view of ['full', 'list'] as const) for (const kind of KINDS) out.push(`- ${PATHS[view]} ${kind}: ${(p50(sides[0]!.samples[kind][view], (x) => x.wire) / p50(sides[1]!.samples[kind][view], (x) => x.wire)).toFixed(3)}`);
}
out.push('\n## Every sample (ms, wire / with parse)\n');
for (const s of sides) for (const kind of KINDS) for (const view of ['full', 'list'] as const) s.samples[kind][view].forEach((x, i) => out.push(`- ${s.label} ${view} ${kind} round ${i + 1}: ${x.map((y) => `${fmt(y.wire)}/${fmt(y.ms)}`).join(' ')}`));
const report = out.join('\n') + '\n';
console.log(report);
if (!noWrite) {
  const file = `bench/results/list-view-${new Date().toISOString().slice(0, 16).replace(':', '')}.md`;
  writeFileSync(file, report);
  console.error(`written: ${file}`);
}
