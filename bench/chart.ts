/** Line charts as SVG files (no dependency): one panel per measure, the x axis shared, for bench/results/; a PNG of one where Chromium is installed. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Series {
  label: string;
  points: Array<[number, number]>;
}

export interface Panel {
  title: string;
  unit: string;
  series: Series[];
  /** A goal drawn as a dashed line. */
  goal?: { value: number; label: string };
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#d97706'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const num = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/** Panels side by side, each a line chart of its series against `xLabel`, with its points labelled. */
export function lineCharts(title: string, xLabel: string, panels: Panel[]): string {
  const w = 360;
  const hgt = 260;
  const m = { l: 56, r: 16, t: 40, b: 48 };
  const width = panels.length * w;
  const parts: string[] = [];
  panels.forEach((p, i) => {
    const x0 = i * w;
    const xs = p.series.flatMap((s) => s.points.map(([x]) => x));
    const ys = [...p.series.flatMap((s) => s.points.map(([, y]) => y)), ...(p.goal ? [p.goal.value] : [])];
    const xMin = Math.min(...xs);
    const xMax = Math.max(...xs);
    const yMax = Math.max(...ys) * 1.15 || 1;
    const px = (x: number) => x0 + m.l + ((x - xMin) / (xMax - xMin || 1)) * (w - m.l - m.r);
    const py = (y: number) => hgt - m.b - (y / yMax) * (hgt - m.t - m.b);
    parts.push(`<text x="${x0 + w / 2}" y="24" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
    parts.push(`<line x1="${x0 + m.l}" y1="${py(0)}" x2="${x0 + w - m.r}" y2="${py(0)}" stroke="#888"/><line x1="${x0 + m.l}" y1="${py(0)}" x2="${x0 + m.l}" y2="${m.t}" stroke="#888"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = (yMax / 4) * k;
      parts.push(`<text x="${x0 + m.l - 6}" y="${py(v) + 4}" text-anchor="end" font-size="10" fill="#555">${num(v)}</text>`);
    }
    for (const x of [...new Set(xs)]) parts.push(`<text x="${px(x)}" y="${hgt - m.b + 16}" text-anchor="middle" font-size="10" fill="#555">${x.toLocaleString('en-US')}</text>`);
    parts.push(`<text x="${x0 + w / 2}" y="${hgt - 10}" text-anchor="middle" font-size="11">${esc(xLabel)}</text>`);
    parts.push(`<text x="${x0 + 14}" y="${(m.t + hgt - m.b) / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 ${x0 + 14} ${(m.t + hgt - m.b) / 2})">${esc(p.unit)}</text>`);
    if (p.goal) parts.push(`<line x1="${x0 + m.l}" y1="${py(p.goal.value)}" x2="${x0 + w - m.r}" y2="${py(p.goal.value)}" stroke="#888" stroke-dasharray="4 3"/><text x="${x0 + w - m.r}" y="${py(p.goal.value) - 4}" text-anchor="end" font-size="10" fill="#555">${esc(p.goal.label)}</text>`);
    p.series.forEach((s, j) => {
      const c = COLORS[j % COLORS.length]!;
      const pts = [...s.points].sort((a, b) => a[0] - b[0]);
      parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of pts) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${c}"/><text x="${px(x).toFixed(1)}" y="${(py(y) - 7).toFixed(1)}" text-anchor="middle" font-size="9" fill="${c}">${num(y)}</text>`);
      if (p.series.length > 1) parts.push(`<text x="${x0 + m.l + 8}" y="${m.t + 12 + j * 13}" font-size="10" fill="${c}">${esc(s.label)}</text>`);
    });
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${hgt + 24}" viewBox="0 0 ${width} ${hgt + 24}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="8" y="${hgt + 18}" font-size="11" fill="#333">${esc(title)}</text>
${parts.join('\n')}
</svg>
`;
}

/** Render an SVG file as a PNG beside it with headless Chromium, when it is installed; returns the PNG's path. */
export function svgToPng(svgFile: string, width: number, height: number): string | undefined {
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((c) => existsSync(c));
  if (!chromium) return undefined;
  const png = svgFile.replace(/\.svg$/, '.png');
  execFileSync(chromium, ['--headless', '--no-sandbox', '--disable-gpu', `--screenshot=${png}`, `--window-size=${width},${height}`, `file://${svgFile}`], { stdio: 'ignore', timeout: 60_000 });
  return existsSync(png) ? png : undefined;
}

/** The size an SVG of `lineCharts` with this many panels has. */
export const chartSize = (panels: number): [number, number] => [panels * 360, 284];
