/** Plain-text tables in the style of `docker volume ls`: upper-case headers, columns padded by 3 spaces. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
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
