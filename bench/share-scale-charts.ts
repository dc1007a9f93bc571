/**
 * The charts of bench/share-scale.ts drawn again from its result files (a run cut short writes its tables after every
 * configuration, but its charts only at the end): `node dist/bench/share-scale-charts.js OUT_BASE RESULT.md...`
 * writes OUT_BASE.svg and .png with the idle operations of every file given (one series per file and node or
 * volume count), and List / docker volume ls / Mount p99 at node0.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { chartSize, lineCharts, svgToPng, type Series } from './chart.js';

const [outArg, ...files] = process.argv.slice(2);
const outBase = outArg ? resolve(outArg) : undefined;
if (!outBase || files.length === 0) {
  console.error('usage: node dist/bench/share-scale-charts.js OUT_BASE RESULT.md...');
  process.exit(2);
}
interface Row { file: string; volumes: number; nodes: number; perNode: number; all: number; list: number; ls: number; mount99: number }
const rows: Row[] = [];
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const tag = basename(f, '.md').replace(/^share-scale-\d{4}-\d{2}-\d{2}-?/, '') || 'after';
  const lat = new Map<string, number[]>();
  for (const m of text.matchAll(/^\| (\d+) \| (\d+) \| ([\d.—]+) \| ([\d.—]+) \| ([\d.—]+) \| ([\d.—]+) \| ([\d.—]+) \| ([\d.—]+) \| ([\d.—]+) \| [\d.—]+ \| [\d.—]+ \|$/gm)) {
    lat.set(`${m[1]}/${m[2]}`, [Number(m[3]), Number(m[5]), Number(m[9])]);
  }
  for (const m of text.matchAll(/^\| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| [\d.]+–[\d.]+ \|$/gm)) {
    const l = lat.get(`${m[1]}/${m[2]}`) ?? [NaN, NaN, NaN];
    rows.push({ file: tag, volumes: Number(m[1]), nodes: Number(m[2]), all: Number(m[4]), perNode: Number(m[5]), list: l[0]!, ls: l[1]!, mount99: l[2]! });
  }
}
const groups = <K>(key: (r: Row) => K) => [...new Set(rows.map(key))];
const series = (by: (r: Row) => string, x: (r: Row) => number, y: (r: Row) => number): Series[] =>
  groups(by).map((label) => ({ label, points: rows.filter((r) => by(r) === label && Number.isFinite(y(r))).map((r) => [x(r), y(r)] as [number, number]) })).filter((s) => s.points.length > 0);
const svg = lineCharts('shared pool on GlusterFS: idle NAS operations and node0 latencies (bench/share-scale.ts)', 'nodes / volumes', [
  { title: 'idle ops/s per node vs nodes', unit: 'ops/s', series: series((r) => `${r.file} ${r.volumes / 1000}k vol`, (r) => r.nodes, (r) => r.perNode) },
  { title: 'idle ops/s, all nodes, vs volumes', unit: 'ops/s', series: series((r) => `${r.file} ${r.nodes} nodes`, (r) => r.volumes, (r) => r.all) },
  { title: 'node0 List p50 / docker volume ls p50 (10 nodes)', unit: 'ms', series: [...series((r) => `${r.file} List`, (r) => r.volumes, (r) => (r.nodes === 10 ? r.list : NaN)), ...series((r) => `${r.file} docker ls`, (r) => r.volumes, (r) => (r.nodes === 10 ? r.ls : NaN))], goal: { value: 150, label: 'goal (docker volume ls)' } },
  { title: 'node0 Mount p99 vs volumes', unit: 'ms', series: series((r) => `${r.file} ${r.nodes} nodes`, (r) => r.volumes, (r) => r.mount99), goal: { value: 20, label: 'goal' } },
]);
writeFileSync(`${outBase}.svg`, svg);
const png = svgToPng(`${outBase}.svg`, ...chartSize(4));
console.log(`written ${outBase}.svg${png ? ` and ${png}` : ''}`);
