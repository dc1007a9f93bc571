// The space of each pool over time: a sample per interval, the last day kept in DATA_DIR/capacity.json.
import type { Logger } from 'pino';
import type { CapacityHistory as Wire, CapacitySample, PoolCapacity } from '../wire/types.js';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import { errorMessage } from '../util/errors.js';
import { Periodic } from '../util/periodic.js';

/** What the history needs of a pool: its name and, when it answers, its space. */
export interface MeasuredPool {
  name: string;
  /** Absent when the pool is down or stalled (no sample is taken then: a gap, not a zero). */
  capacity(): Promise<PoolCapacity | undefined>;
}

export interface CapacityHistoryOptions {
  /** Between two samples (default 5 min). */
  intervalMs?: number;
  /** Samples kept per pool (default 288: a day at 5 min). */
  keep?: number;
}

/**
 * A small ring of samples per pool, for the Hub's charts. Written atomically after each sample (a few KiB);
 * an unreadable file only loses the history. Samples of pools no longer configured are dropped.
 */
export class CapacityHistory {
  private pools: Record<string, CapacitySample[]> = {};
  private readonly ticker: Periodic;
  readonly intervalMs: number;
  private readonly keep: number;

  constructor(
    private readonly file: string,
    private readonly sources: () => MeasuredPool[],
    private readonly log: Logger,
    opts: CapacityHistoryOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 5 * 60_000;
    this.keep = opts.keep ?? 288;
    this.ticker = new Periodic(this.intervalMs, () => this.take().catch((err) => this.log.warn({ err: errorMessage(err) }, 'capacity sample failed')));
  }

  async load(): Promise<void> {
    try {
      const saved = await readJson<{ v: 1; pools: Record<string, CapacitySample[]> }>(this.file);
      if (saved?.v !== 1 || typeof saved.pools !== 'object' || saved.pools === null) return;
      for (const [k, xs] of Object.entries(saved.pools)) if (Array.isArray(xs)) this.pools[k] = xs.filter((x) => typeof x?.at === 'string' && typeof x.usedBytes === 'number').slice(-this.keep);
    } catch (err) {
      this.log.warn({ file: this.file, err: errorMessage(err) }, 'capacity history unreadable; starting a new one');
    }
  }

  /** A sample now, then one every interval. */
  start(): void {
    this.ticker.start(true);
  }

  async stop(): Promise<void> {
    await this.ticker.stop();
  }

  /** Take one sample of every pool now (a sample asked for while one runs shares it; failures are logged). */
  sample(): Promise<void> {
    return this.ticker.run();
  }

  private async take(): Promise<void> {
    const at = new Date().toISOString();
    const names = new Set<string>();
    for (const p of this.sources()) {
      names.add(p.name);
      const c = await p.capacity().catch(() => undefined);
      if (!c) continue;
      const xs = (this.pools[p.name] ??= []);
      xs.push({ at, ...c });
      if (xs.length > this.keep) xs.splice(0, xs.length - this.keep);
    }
    for (const k of Object.keys(this.pools)) if (!names.has(k)) delete this.pools[k];
    await writeJsonAtomic(this.file, { v: 1, pools: this.pools }).catch((err) => this.log.warn({ file: this.file, err: errorMessage(err) }, 'could not write the capacity history'));
  }

  /** The newest sample of a pool. */
  latest(pool: string): CapacitySample | undefined {
    return this.pools[pool]?.at(-1);
  }

  history(): Wire {
    return { intervalMs: this.intervalMs, pools: structuredClone(this.pools) };
  }
}
