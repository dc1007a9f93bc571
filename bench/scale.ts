/**
 * How ferryd's costs grow with the number of volumes on one host (issue 17, item 4): for each size (default
 * 1,000 / 5,000 / 10,000 volumes) a fresh ferryd gets that many volumes through the plugin socket, then is
 * restarted RESTARTS times: time from spawn to ready (and ferryd's own start-up time), resident memory when ready
 * and after listing, the control API's volume list (GET /v1/volumes) and Docker's List at the plugin socket, right
 * after the start (while ferryd's first usage pass walks every volume) and once that pass is done (a quiet ferryd),
 * with the memory then. Writes bench/results/scale-DATE-COMMIT.md (every sample, machine, load) and .svg/.png (the
 * curves), COMMIT the one measured; --no-write prints only. --bin=PATH runs another build's bin/ferry (an older
 * commit's checkout, built) with this bench, for before/after figures of one session.
 *   npm run build && node dist/bench/scale.js [sizes=1000,5000,10000] [restarts=5] [--no-write] [--bin=PATH]
 */
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { startFerryd, unixRequest, ROOT, type Ferryd } from '../test/helpers/ferryd.js';
import { createVolumes, median, percentile, pluginClient, onInterrupt, reporter, progressLog, loadAverage, shOut, rssMB, timed } from './lib.js';
import { chartSize, lineCharts, svgToPng } from './chart.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const noWrite = process.argv.includes('--no-write');
const binArg = process.argv.find((a) => a.startsWith('--bin='))?.slice('--bin='.length);
const bin = binArg ? resolve(binArg) : undefined;
const measuredRoot = bin ? resolve(dirname(bin), '..') : ROOT;
const SIZES = (args[0] ?? '1000,5000,10000').split(',').map(Number);
const RESTARTS = Number(args[1] ?? 5);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(RESTARTS) || RESTARTS < 1) {
  console.error('usage: node dist/bench/scale.js [sizes=1000,5000,10000] [restarts=5] [--no-write] [--bin=PATH]');
  process.exit(2);
}
const LISTS = 10;
/** How long to wait for ferryd's first usage pass after a start (it walks every volume). */
const PASS_WAIT_MS = 60_000;
const GOALS = { readyMs: 1000, listMs: 20, rssMB: 150 };

const progress = progressLog('scale');
const load = loadAverage;
const sh = shOut;

interface Row {
  volumes: number;
  createSeconds: number;
  ready: number[];
  inside: number[];
  rssReady: number[];
  rssListed: number[];
  apiList: number[];
  pluginList: number[];
  /** Once the first usage pass is done. */
  passMs: number[];
  apiQuiet: number[];
  pluginQuiet: number[];
  rssQuiet: number[];
  /** GET /metrics on a quiet ferryd (the Prometheus scrape: a series per volume and family), the client's whole call. */
  scrape: number[];
  /** This process's JSON.parse of the API's list, part of each GET timed (the client reads the answer whole). */
  parseMs: number[];
  load: string;
}

/** The first usage pass after a start is done when no volume is "not measured yet" (its snapshots are checked). */
const passDone = (text: string) => !text.includes('"snapshotNote":"not measured yet"');

let f: Ferryd | undefined;
onInterrupt(async () => f?.destroy(), progress);
const rows: Row[] = [];
const loadStart = load();
try {
  for (const n of SIZES) {
    progress(`${n} volumes: creating`);
    f = await startFerryd({ logLevel: 'info', ...(bin ? { bin } : {}) });
    const t = performance.now();
    await createVolumes(f.pluginSocket, n);
    const createSeconds = (performance.now() - t) / 1000;
    const row: Row = { volumes: n, createSeconds, ready: [], inside: [], rssReady: [], rssListed: [], apiList: [], pluginList: [], passMs: [], apiQuiet: [], pluginQuiet: [], rssQuiet: [], scrape: [], parseMs: [], load: '' };
    for (let r = 0; r < RESTARTS; r++) {
      await f.stop();
      const started = performance.now();
      row.ready.push(await timed(() => f!.start()));
      row.rssReady.push(rssMB(f.pid));
      const p = pluginClient(f.pluginSocket);
      for (let i = 0; i < LISTS; i++) {
        row.apiList.push(await timed(async () => {
          const a = await unixRequest(f!.apiSocket, 'GET', '/v1/volumes');
          if (a.status !== 200) throw new Error(`GET /v1/volumes: ${a.status}`);
        }));
        row.pluginList.push(await timed(async () => {
          const l = await p.call('List', {});
          if ((l.Volumes as unknown[]).length !== n) throw new Error(`List gave ${(l.Volumes as unknown[]).length} volumes, not ${n}`);
        }));
      }
      row.rssListed.push(rssMB(f.pid));
      for (;;) {
        const a = await unixRequest(f.apiSocket, 'GET', '/v1/volumes');
        if (passDone(a.text)) {
          row.passMs.push(performance.now() - started);
          const text = a.text;
          for (let i = 0; i < 3; i++) row.parseMs.push(await timed(async () => JSON.parse(text))); // (what each GET's timing includes)
          break;
        }
        if (performance.now() - started > PASS_WAIT_MS) throw new Error(`the first usage pass was not done ${PASS_WAIT_MS / 1000} s after the start`);
        await new Promise((res) => setTimeout(res, 200));
      }
      for (let i = 0; i < LISTS; i++) {
        row.apiQuiet.push(await timed(async () => {
          const a = await unixRequest(f!.apiSocket, 'GET', '/v1/volumes');
          if (a.status !== 200) throw new Error(`GET /v1/volumes: ${a.status}`);
        }));
        row.pluginQuiet.push(await timed(async () => {
          const l = await p.call('List', {});
          if ((l.Volumes as unknown[]).length !== n) throw new Error(`List gave ${(l.Volumes as unknown[]).length} volumes, not ${n}`);
        }));
      }
      row.rssQuiet.push(rssMB(f.pid));
      for (let i = 0; i < LISTS; i++) {
        row.scrape.push(await timed(async () => {
          const a = await unixRequest(f!.apiSocket, 'GET', '/metrics');
          if (a.status !== 200 || !a.text.includes('ferry_volume_created_timestamp_seconds{')) throw new Error(`GET /metrics: ${a.status}`);
        }));
      }
      p.close();
    }
    const logs = await f.logs();
    row.inside = [...logs.matchAll(/"volumes":(\d+),"startupMs":(\d+)/g)].slice(-RESTARTS).map((m) => Number(m[2]));
    row.load = load();
    rows.push(row);
    await f.destroy();
    f = undefined;
    progress(`${n} volumes: ready median ${median(row.ready).toFixed(0)} ms`);
  }
} finally {
  await f?.destroy();
}

const { out, emit } = reporter();
const date = new Date().toISOString().slice(0, 10);
const fmt = (v: number[]) => v.map((x) => x.toFixed(1)).join(', ');
const p = (v: number[], q: number) => percentile([...v].sort((a, b) => a - b), q);
emit(`# ferryd with many volumes on one host — ${date}`);
emit();
emit('| | |\n|---|---|');
const commit = sh('git', ['-C', measuredRoot, 'rev-parse', '--short', 'HEAD']);
emit(`| commit | ${commit}${bin ? ` (${bin}, with the bench of ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])})` : ''} |`);
emit(`| machine | ${sh('nproc', [])} cores, ${sh('uname', ['-r'])}, Node ${process.version}, data dir on ${sh('findmnt', ['-n', '-o', 'FSTYPE', '-T', '/tmp'])} |`);
emit(`| load average | ${loadStart} at start, ${load()} at the end |`);
emit(`| command | \`node dist/bench/scale.js ${process.argv.slice(2).join(' ')}\` |`);
emit();
emit(`Each size: a fresh ferryd (no Docker engine, \`dockerHost: none\`) gets the volumes through Docker's Create at its plugin socket (64 at a time), then is restarted ${RESTARTS} times. After each start the API's volume list and the plugin's List are timed ${LISTS} times each (right after the start, while ferryd's first usage pass walks every volume), then again ${LISTS} times each once that pass is done (a quiet ferryd: no volume's snapshots \"not measured yet\"), and the resident memory is read after each series; then \`GET /metrics\` (a Prometheus scrape) ${LISTS} times. A GET's time is the client's whole call: request, answer read whole, and this process's \`JSON.parse\` of it (the parse alone is shown apart).`);
emit();
emit(`| volumes | spawn → ready (median) | inside ferryd | RSS when ready | RSS after lists | RSS quiet | GET /v1/volumes p50 / p90 | GET quiet p50 / p90 | client's JSON.parse | plugin List p50 / p90 | List quiet p50 / p90 | GET /metrics p50 / p90 | first usage pass done | creating them |`);
emit('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  emit(`| ${r.volumes.toLocaleString('en-US')} | ${median(r.ready).toFixed(0)} ms | ${median(r.inside).toFixed(0)} ms | ${median(r.rssReady).toFixed(0)} MB | ${median(r.rssListed).toFixed(0)} MB | ${median(r.rssQuiet).toFixed(0)} MB | ${p(r.apiList, 50).toFixed(1)} / ${p(r.apiList, 90).toFixed(1)} ms | ${p(r.apiQuiet, 50).toFixed(1)} / ${p(r.apiQuiet, 90).toFixed(1)} ms | ${median(r.parseMs).toFixed(1)} ms | ${p(r.pluginList, 50).toFixed(1)} / ${p(r.pluginList, 90).toFixed(1)} ms | ${p(r.pluginQuiet, 50).toFixed(1)} / ${p(r.pluginQuiet, 90).toFixed(1)} ms | ${p(r.scrape, 50).toFixed(1)} / ${p(r.scrape, 90).toFixed(1)} ms | ${(median(r.passMs) / 1000).toFixed(1)} s | ${r.createSeconds.toFixed(1)} s |`);
}
const big = rows[rows.length - 1]!;
const rssWorst = Math.max(median(big.rssListed), median(big.rssQuiet));
emit();
emit(`Goals at ${big.volumes.toLocaleString('en-US')} volumes: ready ≤ ${GOALS.readyMs} ms from spawn: **${median(big.ready).toFixed(0)} ms, ${median(big.ready) <= GOALS.readyMs ? 'met' : 'NOT met'}**; API volume list ≤ ${GOALS.listMs} ms on a quiet ferryd: **${p(big.apiQuiet, 50).toFixed(1)} ms, ${p(big.apiQuiet, 50) <= GOALS.listMs ? 'met' : 'NOT met'}** (right after a start: ${p(big.apiList, 50).toFixed(1)} ms, ${p(big.apiList, 50) <= GOALS.listMs ? 'met' : 'NOT met'}); RSS ≤ ${GOALS.rssMB} MB (the larger of after lists and quiet): **${rssWorst.toFixed(0)} MB, ${rssWorst <= GOALS.rssMB ? 'met' : 'NOT met'}**.`);
emit();
emit('## Every sample');
emit();
for (const r of rows) {
  emit(`- ${r.volumes} volumes (load at the end ${r.load}): spawn → ready ${fmt(r.ready)} ms; inside ${r.inside.join(', ')} ms; RSS ready ${fmt(r.rssReady)} MB, after lists ${fmt(r.rssListed)} MB, quiet ${fmt(r.rssQuiet)} MB; GET /v1/volumes ${fmt(r.apiList)} ms; quiet ${fmt(r.apiQuiet)} ms; client's JSON.parse ${fmt(r.parseMs)} ms; plugin List ${fmt(r.pluginList)} ms; quiet ${fmt(r.pluginQuiet)} ms; GET /metrics ${fmt(r.scrape)} ms; first usage pass done ${fmt(r.passMs)} ms after spawn`);
}
const svg = lineCharts(`ferryd with many volumes, ${date} (bench/scale.ts)`, 'volumes', [
  { title: 'start-up (spawn → ready)', unit: 'ms', series: [{ label: 'spawn → ready', points: rows.map((r) => [r.volumes, median(r.ready)]) }, { label: 'inside ferryd', points: rows.map((r) => [r.volumes, median(r.inside)]) }], goal: { value: GOALS.readyMs, label: 'goal' } },
  { title: 'resident memory', unit: 'MB', series: [{ label: 'after lists', points: rows.map((r) => [r.volumes, median(r.rssListed)]) }, { label: 'quiet', points: rows.map((r) => [r.volumes, median(r.rssQuiet)]) }], goal: { value: GOALS.rssMB, label: 'goal' } },
  { title: 'volume list (p50)', unit: 'ms', series: [{ label: 'GET /v1/volumes', points: rows.map((r) => [r.volumes, p(r.apiList, 50)]) }, { label: 'GET, quiet', points: rows.map((r) => [r.volumes, p(r.apiQuiet, 50)]) }, { label: 'plugin List', points: rows.map((r) => [r.volumes, p(r.pluginList, 50)]) }, { label: 'List, quiet', points: rows.map((r) => [r.volumes, p(r.pluginQuiet, 50)]) }], goal: { value: GOALS.listMs, label: 'goal (API)' } },
]);
if (!noWrite) {
  const name = `scale-${date}-${commit}`; // (the commit measured: runs of one day, before and after, side by side)
  const base = join(ROOT, 'bench', 'results', name);
  await writeFile(`${base}.md`, out.join('\n') + `\n\n![the curves](${name}.png) ([SVG](${name}.svg))\n`);
  await writeFile(`${base}.svg`, svg);
  const png = svgToPng(`${base}.svg`, ...chartSize(3));
  progress(`written: ${base}.md, .svg${png ? ' and .png' : ''}`);
}
