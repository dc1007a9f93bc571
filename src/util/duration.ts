/** Durations such as 24h or 1h30m: parsed and formatted. */
import { FerryError } from './errors.js';

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parse a duration such as "24h", "90m", "7d", "1h30m" or "0" into milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const t = text.trim();
  if (t === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
  let total = 0;
  let pos = 0;
  while (pos < t.length) {
    re.lastIndex = pos;
    const m = re.exec(t);
    if (!m) {
      throw new FerryError('invalid', `${what} "${text}" is not a duration; write it like 30s, 90m, 24h, 7d or 1h30m`);
    }
    total += Number(m[1]) * units[m[2]!]!;
    pos = re.lastIndex;
  }
  if (t.length === 0) throw new FerryError('invalid', `${what} is empty; write it like 24h`);
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.round(h / 24)}d`;
}
