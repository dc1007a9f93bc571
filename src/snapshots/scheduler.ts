/** Scheduled snapshots: which volumes are due (by option or label), taking them and thinning by retention. */
import type { Logger } from 'pino';
import type { VolumeService, VolumeInfo } from '../volumes/service.js';
import type { SnapshotService, SnapshotRecord } from './service.js';
import { parseSchedule } from '../policy/schedule.js';
import { Scheduler, upcoming } from '../policy/scheduler.js';
import { applyRetention, parseKeepPolicy, formatKeepPolicy } from '../policy/retention.js';
import { errorMessage } from '../util/errors.js';
import type { VolumeSchedule } from '../wire/types.js';

/** A schedule for every volume carrying a label (from ferryd's config). */
export interface LabelSchedule {
  /** `key=value`, or `key` for any value. */
  label: string;
  schedule: string;
  keep?: string;
}

export interface Plan {
  schedule: string;
  keep?: string;
  source: string;
}

/**
 * Runs scheduled snapshots inside ferryd. Every tick, each volume with a plan (its own
 * `snapshot-schedule` option, else the first matching label rule) gets a snapshot if a schedule slot
 * passed since its last scheduled one; slots missed while ferryd was down collapse into one catch-up
 * run. After each run the volume's scheduled snapshots are thinned by its keep policy (restic's forget
 * rules); manual snapshots and commits are never touched.
 */
export class SnapshotScheduler {
  private readonly scheduler: Scheduler<VolumeInfo, Plan>;

  constructor(
    volumes: VolumeService,
    private readonly snapshots: SnapshotService,
    private readonly rules: LabelSchedule[],
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    intervalMs = 15_000,
  ) {
    for (const r of rules) {
      parseSchedule(r.schedule);
      if (r.keep) parseKeepPolicy(r.keep);
    }
    this.scheduler = new Scheduler(volumes, {
      planFor: (v) => this.planFor(v),
      lastSlot: (v) => this.lastSlot(v),
      run: (v, plan, slot, last) => this.runOne(v, plan, slot, last),
      failed: (v, plan, err) => this.log.error({ volume: v.name, schedule: plan.schedule, err: errorMessage(err) }, 'scheduled snapshot failed'),
    }, now, intervalMs);
  }

  planFor(v: VolumeInfo): Plan | undefined {
    const own = v.options['snapshot-schedule'];
    if (own) return { schedule: own, ...(v.options['snapshot-keep'] ? { keep: v.options['snapshot-keep'] } : {}), source: 'volume option' };
    for (const r of this.rules) {
      const [k, val] = r.label.split('=', 2) as [string, string | undefined];
      if (k in v.labels && (val === undefined || v.labels[k] === val)) return { schedule: r.schedule, ...(r.keep ? { keep: r.keep } : {}), source: `label ${r.label}` };
    }
    return undefined;
  }

  private async lastSlot(v: VolumeInfo): Promise<Date | undefined> {
    const last = (await this.scheduled(v.name)).map((s) => s.slot ?? s.createdAt).sort().at(-1);
    return last ? new Date(last) : undefined;
  }

  /** The volume's snapshot schedule and its next run, if it has one. */
  async describe(v: VolumeInfo): Promise<VolumeSchedule | undefined> {
    const plan = this.planFor(v);
    if (!plan) return undefined;
    const last = await this.lastSlot(v);
    const { next, due } = upcoming(plan.schedule, last, new Date(v.createdAt), new Date(this.now()));
    return { kind: 'snapshot', schedule: plan.schedule, ...(plan.keep ? { keep: plan.keep } : {}), source: plan.source, ...(last ? { lastRun: last.toISOString() } : {}), nextRun: next.toISOString(), due };
  }

  start(): void {
    this.scheduler.start();
  }

  stop(): Promise<void> {
    return this.scheduler.stop();
  }

  /** One pass over every volume; returns the number of snapshots taken. */
  tick(): Promise<number> {
    return this.scheduler.passOnce();
  }

  private async scheduled(volume: string): Promise<SnapshotRecord[]> {
    return (await this.snapshots.list(volume)).filter((s) => s.origin === 'schedule');
  }

  private async runOne(v: VolumeInfo, plan: Plan, slot: Date, last: Date | undefined): Promise<void> {
    const schedule = parseSchedule(plan.schedule);
    const scheduled = await this.scheduled(v.name);
    const now = new Date(this.now());
    const snap = await this.snapshots.create(v.name, { origin: 'schedule', slot: slot.toISOString(), name: `scheduled-${slot.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}` });
    let removed: string[] = [];
    if (plan.keep) {
      const policy = parseKeepPolicy(plan.keep);
      const { remove } = applyRetention([...scheduled, snap], policy, now);
      removed = remove.map((s) => s.id);
      if (removed.length) await this.snapshots.prune(v.name, removed);
    }
    const missed = last ? Math.max(0, countSlots(schedule, last, slot) - 1) : 0;
    this.log.info(
      { volume: v.name, snapshot: snap.id, slot: slot.toISOString(), schedule: schedule.text, keep: plan.keep ? formatKeepPolicy(parseKeepPolicy(plan.keep)) : undefined, pruned: removed.length, missedSlots: missed, source: plan.source, ms: snap.durationMs },
      missed > 0 ? 'scheduled snapshot (catch-up for slots missed while ferryd was down)' : 'scheduled snapshot',
    );
  }
}

/** Slots in (from, to], capped (only for the log line). */
function countSlots(schedule: ReturnType<typeof parseSchedule>, from: Date, to: Date): number {
  let n = 0;
  for (let t = schedule.next(from); t <= to && n < 100_000; t = schedule.next(t)) n++;
  return n;
}
