/**
 * How backup cost grows with the data: the charts of bench/backup.ts drawn from its result files, one file per
 * data-set size (`--gib`), from the JSON line each report ends with:
 *   node dist/bench/backup-charts.js OUT_BASE RESULT.md...
 * writes OUT_BASE.svg and .png: first backup, second backup (1 % changed) and full restore, ferry and restic
 * (medians of the rounds, seconds), and ferry/restic of each against the goal (0.7).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chartSize, lineCharts, svgToPng, type Panel, type Series } from './chart.js';
import { median } from './lib.js';

const [outArg, ...files] = process.argv.slice(2);
if (!outArg || files.length === 0) {
  console.error('usage: node dist/bench/backup-charts.js OUT_BASE RESULT.md...');
  process.exit(2);
}
const outBase = resolve(outArg);

type Sample = { ms: number };
interface Run { gib: number; f1: Sample[]; r1: Sample[]; f2: Sample[]; r2: Sample[]; fr: Sample[]; rr: Sample[] }
const runs: Run[] = files.map((f) => {
  const line = readFileSync(f, 'utf8').split('\n').find((l) => l.startsWith('JSON: '));
  if (!line) throw new Error(`${f}: no JSON line (a report of bench/backup.ts ends with one)`);
  return JSON.parse(line.slice('JSON: '.length)) as Run;
});
runs.sort((a, b) => a.gib - b.gib);

const s = (samples: Sample[]) => median(samples.map((x) => x.ms)) / 1000;
const steps = [
  { title: 'first backup', ferry: (r: Run) => s(r.f1), restic: (r: Run) => s(r.r1) },
  { title: 'second backup (1 % changed)', ferry: (r: Run) => s(r.f2), restic: (r: Run) => s(r.r2) },
  { title: 'full restore', ferry: (r: Run) => s(r.fr), restic: (r: Run) => s(r.rr) },
];
const panels: Panel[] = steps.map((st) => ({
  title: st.title,
  unit: 'seconds (median of rounds)',
  series: [
    { label: 'ferry', points: runs.map((r) => [r.gib, st.ferry(r)]) },
    { label: 'restic 0.14', points: runs.map((r) => [r.gib, st.restic(r)]) },
  ],
}));
panels.push({
  title: 'ferry / restic',
  unit: 'ratio',
  series: steps.map((st): Series => ({ label: st.title, points: runs.map((r) => [r.gib, st.ferry(r) / st.restic(r)]) })),
  goal: { value: 0.7, label: 'goal 0.7' },
});

const svg = lineCharts(`Backups by data-set size (GiB, 60,000 files per GiB): ${files.map((f) => f.replace(/^.*\//, '')).join(', ')}`, 'data set (GiB)', panels);
writeFileSync(`${outBase}.svg`, svg);
const png = svgToPng(`${outBase}.svg`, ...chartSize(panels.length));
console.log(`written: ${outBase}.svg${png ? ` and ${png}` : ''}`);
for (const r of runs) console.log(`${r.gib} GiB: ${steps.map((st) => `${st.title} ${st.ferry(r).toFixed(2)} / ${st.restic(r).toFixed(2)} s = ${(st.ferry(r) / st.restic(r)).toFixed(2)}`).join('; ')}`);
