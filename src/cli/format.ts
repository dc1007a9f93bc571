/** The width tables fit: 100 columns, or the terminal's when it is wider. */
export const TABLE_WIDTH = 100;
export function tableWidth(out: { isTTY?: boolean; columns?: number } = process.stdout): number {
  return out.isTTY && out.columns && out.columns > TABLE_WIDTH ? out.columns : TABLE_WIDTH;
}

export interface TableOptions {
  /** The columns to fit (default TABLE_WIDTH). */
  width?: number;
  /**
   * Headers of the columns that may be shortened (with an ellipsis) to fit, in the order they are cut.
   * Never a name or an id: a user copies those into the next command, and two long names cut to the same
   * prefix would look like one (as `docker volume ls`, which never cuts a name). A row with a long name is
   * wider than the table instead.
   */
  shrink?: string[];
}

/**
 * Plain-text tables in the style of `docker volume ls`: upper-case headers, columns padded by 3 spaces.
 * A table wider than `width` has its `shrink` columns cut, one after the other, each to no less than 10
 * characters (or its header); the full values are in `inspect` and `--json`.
 */
export function table(headers: string[], rows: string[][], opts: TableOptions = {}): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const max = opts.width ?? TABLE_WIDTH;
  const shrinkable = (opts.shrink ?? []).map((h) => headers.indexOf(h)).filter((i) => i >= 0);
  const floor = (i: number) => Math.max(headers[i]!.length, 10);
  let excess = widths.reduce((a, w) => a + w, 0) + 3 * (headers.length - 1) - max;
  for (const i of shrinkable) {
    const cut = Math.min(Math.max(0, excess), widths[i]! - floor(i));
    if (cut <= 0) continue;
    widths[i]! -= cut;
    excess -= cut;
  }
  const line = (cells: string[]) =>
    cells
      .map((c, i) => {
        const cut = ellipsis(c, widths[i]!);
        return i === cells.length - 1 ? cut : cut.padEnd(widths[i]!);
      })
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A byte count in 1024-based units: the number as shown ("1.5", "284") and its unit. */
export function scaled(n: number): { value: string; unit: string } {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return { value: i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 1 : 0), unit: UNITS[i]! };
}

export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const s = scaled(n);
  return `${s.value} ${s.unit}`;
}

/** "8.1s", "45s", "3m05s", "2h03m", "3d04h": a length of time as a person reads it. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = ms / 1000;
  if (s < 10) return ms % 1000 === 0 ? `${s}s` : `${s.toFixed(1)}s`;
  const secs = Math.round(s);
  const two = (n: number) => String(n).padStart(2, '0');
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${two(secs % 60)}s`;
  if (secs < 86_400) return `${Math.floor(secs / 3600)}h${two(Math.floor((secs % 3600) / 60))}m`;
  return `${Math.floor(secs / 86_400)}d${two(Math.floor((secs % 86_400) / 3600))}h`;
}

/** `text` cut to `max` characters, the last one an ellipsis when something was cut. */
export function ellipsis(text: string, max: number): string {
  if (text.length <= max) return text;
  return max <= 0 ? '' : text.slice(0, max - 1) + '…';
}

/** "3 minutes ago", "in 23 hours": how a person reads a date. */
export function ago(iso: string, now = Date.now()): string {
  const diff = Date.parse(iso) - now;
  const abs = Math.abs(diff);
  const steps: Array<[number, string]> = [
    [60_000, 'second'],
    [3_600_000, 'minute'],
    [86_400_000, 'hour'],
    [Infinity, 'day'],
  ];
  const unitMs: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };
  const unit = steps.find(([limit]) => abs < limit)![1];
  const n = Math.max(1, Math.round(abs / unitMs[unit]!));
  const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (abs < 1000) return 'just now';
  return diff < 0 ? `${text} ago` : `in ${text}`;
}
