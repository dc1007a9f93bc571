/** Scheduled backups (`-o backup-schedule`, `backup-target`, `backup-keep`): due slots started as backup jobs, the last slot per volume kept on disk, older scheduled backups thinned by the keep policy. */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { JobInfo, JobRegistry } from '../jobs/jobs.js';
import { applyRetention, parseKeepPolicy } from '../policy/retention.js';
import { Scheduler, upcoming, type ScheduledVolumes } from '../policy/scheduler.js';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import { errorMessage } from '../util/errors.js';
import type { Quarantine } from '../util/quarantine.js';
import type { VolumeInfo } from '../volumes/service.js';
import type { VolumeSchedule } from '../wire/types.js';
import type { BackupOutcome } from './history.js';
import type { BackupInfo } from './index.js';
import type { Targets } from './targets.js';

/** A volume's scheduled backups: `-o backup-schedule`, `-o backup-target` and `-o backup-keep`. */
interface BackupPlan {
  schedule: string;
  target: string;
  keep?: string;
}

/** The volume's scheduled backups, from its options; undefined: it has none. */
function planOf(v: VolumeInfo): BackupPlan | undefined {
  const schedule = v.options['backup-schedule'];
  const target = v.options['backup-target'];
  if (!schedule || !target) return undefined;
  return { schedule, target, ...(v.options['backup-keep'] ? { keep: v.options['backup-keep'] } : {}) };
}

/** What scheduled backups need of the backup service. */
export interface ScheduledBackupsContext {
  readonly volumes: ScheduledVolumes<VolumeInfo>;
  readonly jobs: JobRegistry;
  readonly targets: Targets;
  readonly log: Logger;
  /** Where an unreadable state file is moved aside (set once ferryd has one). */
  quarantine(): Quarantine | undefined;
  /** Start a backup job, checked as the CLI's is. */
  startBackup(volume: string, opts: { target: string; tags: string[] }): Promise<JobInfo>;
  /** Record a scheduled backup that could not start as a failure (history, /metrics). */
  ended(o: BackupOutcome): void;
}

export class ScheduledBackups {
  private scheduler: Scheduler<VolumeInfo, BackupPlan> | undefined;
  /** The state file of the running scheduler (its last slot per volume). */
  private stateFile: string | undefined;
  private readonly running = new Set<string>();
  private readonly afterJobs = new Set<Promise<void>>();

  constructor(private readonly c: ScheduledBackupsContext) {}

  /** Resolves when every scheduled backup started so far has ended and its bookkeeping (state, retention) is done. */
  async settled(): Promise<void> {
    while (this.afterJobs.size) await Promise.all([...this.afterJobs]);
  }

  /**
   * Every tick, a volume whose schedule slot passed since its last scheduled backup gets one (slots missed
   * while ferryd was down collapse into one catch-up run); then its scheduled backups in that target are
   * thinned by the keep policy (restic's forget rules; `ferry backup prune` reclaims the space).
   * The slot is recorded when the backup ends, so one interrupted by a crash runs again at start-up.
   */
  start(stateDir: string, intervalMs = 15_000, now: () => number = Date.now): void {
    this.stateFile = join(stateDir, 'backup-schedules.json');
    this.scheduler = this.make(this.stateFile, now, intervalMs);
    this.scheduler.start();
  }

  async stop(): Promise<void> {
    await this.scheduler?.stop();
    await this.settled().catch(() => undefined);
  }

  /** One pass (the timer makes them; tests call it with a fake clock). */
  async tick(file: string, now: () => number): Promise<void> {
    this.stateFile = file;
    await this.make(file, now).passOnce();
  }

  private async lastSlot(file: string, v: VolumeInfo): Promise<Date | undefined> {
    const state = await this.state(file);
    const last = state[v.name]?.createdAt === v.createdAt ? state[v.name]!.slot : undefined;
    return last ? new Date(last) : undefined;
  }

  /** The volume's backup schedule and its next run, if it has one (a run under way: its slot is the next, `due`). */
  async describe(v: VolumeInfo, now = new Date()): Promise<VolumeSchedule | undefined> {
    const plan = planOf(v);
    if (!plan) return undefined;
    const last = this.stateFile ? await this.lastSlot(this.stateFile, v) : undefined;
    const { next, due } = upcoming(plan.schedule, last, new Date(v.createdAt), now);
    return { kind: 'backup', schedule: plan.schedule, ...(plan.keep ? { keep: plan.keep } : {}), target: plan.target, source: 'volume option', ...(last ? { lastRun: last.toISOString() } : {}), nextRun: next.toISOString(), due };
  }

  /** The schedule state (last slot run per volume); an unreadable file is moved aside and counts as empty. */
  private async state(file: string): Promise<Record<string, { slot: string; createdAt: string }>> {
    try {
      const st = await readJson<unknown>(file);
      if (st === undefined) return {};
      if (typeof st !== 'object' || st === null || Array.isArray(st)) throw new Error('not an object of volumes');
      return st as Record<string, { slot: string; createdAt: string }>;
    } catch (err) {
      const quarantine = this.c.quarantine();
      if (!quarantine) throw err;
      await quarantine.moveAside(file, err, 'No scheduled backup is known to have run: each volume with a backup schedule gets its next scheduled backup now.');
      return {};
    }
  }

  private make(file: string, now: () => number, intervalMs?: number): Scheduler<VolumeInfo, BackupPlan> {
    return new Scheduler<VolumeInfo, BackupPlan>(
      this.c.volumes,
      {
        // an unreadable state is found at start-up, not at the first due backup
        beforePass: async () => void (await this.state(file)),
        planFor: (v) => (this.running.has(v.name) ? undefined : planOf(v)),
        lastSlot: (v) => this.lastSlot(file, v),
        run: (v, plan, slot) => this.startOne(v, plan, slot, file, now),
        failed: (v, plan, err) => this.c.log.error({ volume: v.name, target: plan.target, err: errorMessage(err) }, 'backup scheduler failed'),
      },
      now,
      intervalMs,
      (err) => this.c.log.error({ err: errorMessage(err) }, 'backup scheduler failed'),
    );
  }

  /** Start a due scheduled backup as a job; its slot is recorded, and older scheduled backups thinned, when it ends. */
  private async startOne(v: VolumeInfo, plan: BackupPlan, slot: Date, file: string, now: () => number): Promise<void> {
    const { log } = this.c;
    let job: JobInfo;
    try {
      job = await this.c.startBackup(v.name, { target: plan.target, tags: ['scheduled'] });
    } catch (err) {
      log.error({ volume: v.name, target: plan.target, err: errorMessage(err) }, 'scheduled backup could not start');
      // a target gone or a wrong password fails every scheduled backup before its job: count it as failing
      let target = plan.target;
      try {
        target = this.c.targets.label(this.c.targets.resolve(plan.target));
      } catch {
        // an unknown target name: keep the name the volume gives
      }
      this.c.ended({ volume: v.name, createdAt: v.createdAt, target, ok: false, at: now() / 1000 });
      return;
    }
    this.running.add(v.name);
    const after = this.c.jobs.wait(job.id).then(async (done) => {
      try {
        const st = await this.state(file);
        st[v.name] = { slot: slot.toISOString(), createdAt: v.createdAt };
        await writeJsonAtomic(file, st);
        if (done.state === 'succeeded') {
          log.info({ volume: v.name, slot: slot.toISOString(), url: (done.result as BackupInfo).url }, 'scheduled backup');
          // the repository records real times: judge them by the real clock
          if (plan.keep) await this.forget(v.name, plan.target, plan.keep, new Date());
        } else {
          log.error({ volume: v.name, slot: slot.toISOString(), err: done.error?.message }, 'scheduled backup failed');
        }
      } finally {
        this.running.delete(v.name);
      }
    });
    this.afterJobs.add(after);
    void after.catch((err) => log.error({ volume: v.name, err: errorMessage(err) }, 'scheduled backup bookkeeping failed')).finally(() => this.afterJobs.delete(after));
  }

  /** Thin a volume's scheduled backups in a target by its keep policy. */
  private async forget(volume: string, ref: string, keep: string, now: Date): Promise<void> {
    const t = this.c.targets.resolve(ref);
    await this.c.targets.withRepo(t, async (repo) => {
      const scheduled = (await repo.list({ volume })).filter((b) => b.tags.includes('scheduled')).map((b) => ({ ...b, createdAt: b.time }));
      const { remove } = applyRetention(scheduled, parseKeepPolicy(keep), now);
      for (const b of remove) await repo.remove(b.id);
      if (remove.length) this.c.log.info({ volume, target: t.url, forgotten: remove.length, kept: scheduled.length - remove.length }, 'scheduled backups thinned (run `ferry backup prune` to reclaim space)');
    });
  }
}
