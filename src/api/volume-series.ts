/** The per-volume Prometheus series, written as exposition text straight from what ferryd holds in memory: one pass over the volumes per scrape. */
import type { VolumeInfo } from '../volumes/listing.js';
import type { VolumeUsage } from '../wire/types.js';

/** A family of gauges labelled `volume` and one more label (`pool`, or `target`). */
export interface VolumeFamily {
  name: string;
  help: string;
  /** The second label's name. */
  label: string;
  /**
   * The series of a volume: `put` the second label's value and the series' value for each (a value null or
   * undefined is no series). `usage`: the volume's usage figures, read once for every family.
   */
  series(v: VolumeInfo, usage: VolumeUsage | undefined, put: (label: string, value: number | null | undefined) => void): void;
}

/**
 * Text format 0.0.4 as prom-client writes it: HELP and TYPE lines, a blank line between families, a value as
 * JavaScript prints it (NaN as `Nan`, infinities as `+Inf`/`-Inf`), label values and help escaped. prom-client's
 * labelled gauges cost ~60 ms of the event loop per scrape at 10,000 volumes (each label set hashed at every
 * set, then formatted): every plugin call waited behind it. Here ~25 ms (taking turns with the plugin's calls
 * every 1,000 volumes was tried: no shorter worst wait for a Mount, a longer p90). `usageOf`: the volume's figures, if tracked.
 */
export function volumeSeriesText(families: readonly VolumeFamily[], volumes: Iterable<VolumeInfo>, usageOf?: (v: VolumeInfo) => VolumeUsage): string {
  const lines = families.map((f) => [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} gauge`]);
  for (const v of volumes) {
    const usage = usageOf?.(v);
    const volume = escapeLabel(v.name);
    families.forEach((f, i) => {
      f.series(v, usage, (label, value) => {
        if (value !== null && value !== undefined) lines[i]!.push(`${f.name}{volume="${volume}",${f.label}="${escapeLabel(label)}"} ${valueText(value)}`);
      });
    });
  }
  return lines.map((l) => l.join('\n')).join('\n\n');
}

function valueText(n: number): string {
  if (Number.isNaN(n)) return 'Nan';
  if (!Number.isFinite(n)) return n < 0 ? '-Inf' : '+Inf';
  return `${n}`;
}

// (names and pools seldom hold these: tested first, 10,000 times a scrape)
const escapeHelp = (s: string) => (/[\\\n]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : s);
const escapeLabel = (s: string) => (/[\\\n"]/.test(s) ? escapeHelp(s).replace(/"/g, '\\"') : s);
