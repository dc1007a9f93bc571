/** One scheduler for scheduled work on volumes (snapshots, backups): a pass on a timer, each due slot run once. */
import { Periodic } from '../util/periodic.js';
import { dueRun, parseSchedule } from './schedule.js';
import { breather } from '../util/breather.js';

/** What the scheduler needs to know of a volume. */
export interface ScheduledVolume {
  name: string;
  /** ISO time; a schedule's first slot is the first one after it. */
  createdAt: string;
}

/** Where the volumes come from: all of them (made one at a time), and which of them this node schedules (one node per shared volume). */
export interface ScheduledVolumes<V extends ScheduledVolume> {
  listEach(): Iterable<V>;
  scheduledHere(): Promise<(v: V) => boolean>;
}

/** One kind of scheduled work. */
export interface ScheduleKind<V extends ScheduledVolume, P extends { schedule: string }> {
  /** The volume's plan (its cron schedule and whatever else the kind needs), or undefined: nothing to schedule now. */
  planFor(v: V): P | undefined;
  /** The slot of the volume's last scheduled run, if any. */
  lastSlot(v: V, plan: P): Promise<Date | undefined>;
  /** Run the work of a due slot. `last` is the previous slot (for a catch-up's log line). */
  run(v: V, plan: P, slot: Date, last: Date | undefined): Promise<void>;
  /** A run (or the look at its last slot) failed; the pass goes on with the next volume. */
  failed(v: V, plan: P, err: unknown): void;
  /** Once at the start of each pass (e.g. read a state file, so that a bad one is reported at start-up). */
  beforePass?(): Promise<void>;
}

/**
 * When a volume's schedule runs next, as the scheduler's passes will run it: a slot that passed since the
 * last run (or since the volume was made) is `due` and runs at the next pass; otherwise the next slot.
 */
export function upcoming(schedule: string, last: Date | undefined, createdAt: Date, now: Date): { next: Date; due: boolean } {
  const s = parseSchedule(schedule);
  const due = dueRun(s, last, now, createdAt) !== undefined;
  return { next: due ? now : s.next(now), due };
}

/**
 * Every `intervalMs`, each volume scheduled here whose plan has a slot that passed since its last run gets
 * one run; slots missed while ferryd was down collapse into one catch-up run (policy/schedule.ts, dueRun).
 * Never two passes at once; stop() waits for the pass under way.
 */
export class Scheduler<V extends ScheduledVolume, P extends { schedule: string }> {
  private readonly ticker: Periodic;

  constructor(
    private readonly volumes: ScheduledVolumes<V>,
    private readonly kind: ScheduleKind<V, P>,
    private readonly now: () => number = Date.now,
    intervalMs = 15_000,
    onPassError: (err: unknown) => void = () => undefined,
  ) {
    this.ticker = new Periodic(intervalMs, async () => void (await this.passOnce()), onPassError);
  }

  start(): void {
    this.ticker.start(true);
  }

  stop(): Promise<void> {
    return this.ticker.stop();
  }

  /** One pass now; returns how many runs it made. */
  async passOnce(): Promise<number> {
    await this.kind.beforePass?.();
    // asked only when a volume has a plan: on a shared pool the answer lists the attachments (a look at the share
    // every pass of every node, for nothing, when no volume is scheduled)
    let here: ((v: V) => boolean) | undefined;
    let runs = 0;
    // (10,000 volumes: a breath every 256, so that a pass with nothing due never holds up a plugin call long)
    const breathe = breather();
    for (const v of this.volumes.listEach()) {
      await breathe();
      const plan = this.kind.planFor(v);
      if (!plan) continue;
      here ??= await this.volumes.scheduledHere();
      if (!here(v)) continue;
      try {
        const last = await this.kind.lastSlot(v, plan);
        const slot = dueRun(parseSchedule(plan.schedule), last, new Date(this.now()), new Date(v.createdAt));
        if (!slot) continue;
        await this.kind.run(v, plan, slot, last);
        runs++;
      } catch (err) {
        this.kind.failed(v, plan, err);
      }
    }
    return runs;
  }
}
