/**
 * ferryd's own time for the ten plugin calls dockerd makes for one container lifecycle (issue 17, goal 3),
 * sent straight to the plugin socket, this build against another (`--before=PATH`, a built checkout's
 * bin/ferry), rounds interleaved so that both see the same load.
 *   node dist/bench/plugin-calls.js [lifecyclesPerRound=200] [rounds=7] [--before=PATH] [--no-write]
 * (40 lifecycles a round, the old default, took a fifth of a second: its medians moved with the VM's
 * scheduling from run to run, 3.3 to 7.8 ms with the same code.)
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startFerryd, unixRequest } from '../test/helpers/ferryd.js';
import { loadAverage, median, pluginClient, shOut } from './lib.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const perRound = Number(args[0] ?? 200);
const rounds = Number(args[1] ?? 7);
const beforeArg = process.argv.find((a) => a.startsWith('--before='))?.slice('--before='.length);
const noWrite = process.argv.includes('--no-write');

// the calls dockerd 20.10 makes for create + run --rm + rm (as in bench/docker.ts)
const CALLS: Array<[string, 'ok' | 'missing']> = [
  ['Get', 'missing'], ['Create', 'ok'],
  ['Get', 'ok'], ['Get', 'ok'], ['Mount', 'ok'], ['Get', 'ok'], ['Unmount', 'ok'],
  ['Get', 'ok'], ['Get', 'ok'], ['Remove', 'ok'],
];

/** One side: the client's round trips (totals per lifecycle, per call) and ferryd's own handler time per round. */
interface Side { label: string; bin: string | undefined; totals: number[][]; perCall: Map<string, number[]>; own: number[]; ownPerCall: Map<string, number[]> }
const newSide = (label: string, bin: string | undefined): Side => ({ label, bin, totals: [], perCall: new Map(), own: [], ownPerCall: new Map() });
const sides: Side[] = [newSide('after', undefined)];
if (beforeArg) sides.unshift(newSide('before', resolve(beforeArg)));

/**
 * ferryd's own time per plugin endpoint so far (seconds, from its /metrics histogram): the handler's time,
 * from the decoded body to the answer, without HTTP and JSON, which the client's round trip includes.
 */
async function ownSeconds(apiSocket: string): Promise<Map<string, number>> {
  const text = (await unixRequest(apiSocket, 'GET', '/metrics')).text;
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^ferry_plugin_call_duration_seconds_sum\{endpoint="([^"]+)"\} (\S+)$/gm)) out.set(m[1]!.replace(/^.*\./, ''), Number(m[2]));
  return out;
}

const loads: string[] = [`start ${loadAverage()}`];
const ferryds = await Promise.all(sides.map((s) => startFerryd({ logLevel: 'info', ...(s.bin ? { bin: s.bin } : {}) })));
try {
  for (let r = -1; r < rounds; r++) {
    // rotate the order from round to round; round -1 is a warm-up, not recorded
    const order = r % 2 === 0 ? sides.map((_, i) => i) : sides.map((_, i) => i).reverse();
    for (const i of order) {
      const side = sides[i]!;
      const c = pluginClient(ferryds[i]!.pluginSocket);
      const ownBefore = await ownSeconds(ferryds[i]!.apiSocket);
      const totals: number[] = [];
      for (let k = 0; k < perRound; k++) {
        const name = `life-${r + 1}-${k}`;
        let total = 0;
        for (const [call, expect] of CALLS) {
          const body = call === 'Mount' || call === 'Unmount' ? { Name: name, ID: `m-${r + 1}-${k}` } : { Name: name };
          const t = performance.now();
          const res = await c.call(call, body);
          const ms = performance.now() - t;
          if ((expect === 'ok') !== !res.Err) throw new Error(`${side.label} ${call} ${name}: ${res.Err ?? 'unexpected success'}`);
          total += ms;
          if (r >= 0) {
            const list = side.perCall.get(call) ?? [];
            list.push(ms);
            side.perCall.set(call, list);
          }
        }
        totals.push(total);
      }
      c.close();
      if (r >= 0) {
        side.totals.push(totals);
        const ownAfter = await ownSeconds(ferryds[i]!.apiSocket);
        let sum = 0;
        for (const [call, s] of ownAfter) {
          const perLifecycle = ((s - (ownBefore.get(call) ?? 0)) * 1000) / perRound;
          sum += perLifecycle;
          side.ownPerCall.set(call, [...(side.ownPerCall.get(call) ?? []), perLifecycle]);
        }
        side.own.push(sum);
      }
    }
    if (r >= 0) loads.push(`round ${r + 1}: ${loadAverage()}`);
  }
} finally {
  await Promise.all(ferryds.map((f) => f.destroy()));
}
loads.push(`end ${loadAverage()}`);

const ms = (v: number) => `${v.toFixed(2)} ms`;
const out: string[] = [];
out.push(`# plugin-calls — ferryd's own time for one container lifecycle's ten plugin calls\n`);
out.push(`commit ${shOut('git', ['rev-parse', '--short', 'HEAD'])}${shOut('git', ['status', '--porcelain', 'src'])?.trim() ? ' (+ uncommitted src/)' : ''}, ${shOut('nproc', [])} cores, kernel ${shOut('uname', ['-r'])}, Node ${process.version}, data dir on ${shOut('findmnt', ['-no', 'FSTYPE', '-T', '/tmp'])} (/tmp)`);
if (beforeArg) out.push(`before: ${beforeArg}`);
out.push(`${perRound} lifecycles per round, ${rounds} rounds after a warm-up round, sides interleaved (order alternating); calls: ${CALLS.map((c) => c[0]).join(', ')}\n`);
out.push(`load average (1/5/15 min): ${loads.join('; ')}\n`);
out.push(`| side | lifecycle total: median of round medians | per-round medians | ${[...new Set(CALLS.map((c) => c[0]))].map((c) => `${c} p50`).join(' | ')} |`);
out.push(`|---|---|---|${[...new Set(CALLS.map((c) => c[0]))].map(() => '---').join('|')}|`);
for (const s of sides) {
  const roundMedians = s.totals.map((t) => median(t));
  out.push(`| ${s.label} | **${ms(median(roundMedians))}** | ${roundMedians.map((v) => v.toFixed(2)).join(', ')} | ${[...new Set(CALLS.map((c) => c[0]))].map((c) => ms(median(s.perCall.get(c) ?? []))).join(' | ')} |`);
}
if (sides.length === 2) {
  const [b, a] = sides.map((s) => median(s.totals.map((t) => median(t))));
  out.push(`\nafter/before: ${(a! / b!).toFixed(3)}`);
}
const called = [...new Set(CALLS.map((c) => c[0]))];
out.push(`\n## ferryd's own time per lifecycle (its /metrics histogram: handler time, without HTTP and JSON; mean per lifecycle in each round)\n`);
out.push(`| side | median of rounds | per round | ${called.map((c) => `${c} (all calls)`).join(' | ')} |`);
out.push(`|---|---|---|${called.map(() => '---').join('|')}|`);
for (const s of sides) out.push(`| ${s.label} | **${ms(median(s.own))}** | ${s.own.map((v) => v.toFixed(2)).join(', ')} | ${called.map((c) => ms(median(s.ownPerCall.get(c) ?? []))).join(' | ')} |`);
out.push(`\n## Every sample (lifecycle totals, ms, per round)\n`);
for (const s of sides) s.totals.forEach((t, i) => out.push(`- ${s.label} round ${i + 1}: ${t.map((v) => v.toFixed(2)).join(' ')}`));
const report = out.join('\n') + '\n';
console.log(report);
if (!noWrite) {
  const file = `bench/results/plugin-calls-${new Date().toISOString().slice(0, 16).replace(':', '')}.md`;
  writeFileSync(file, report);
  console.error(`written: ${file}`);
}
