/** The backup service: backups, restores, verify and prune as jobs, the targets of ferryd's config, scheduled backups. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import type { Quarantine } from '../util/quarantine.js';
import { Scheduler } from '../policy/scheduler.js';
import { applyRetention, parseKeepPolicy } from '../policy/retention.js';
import type { Logger } from 'pino';
import type { VolumeService, VolumeInfo } from '../volumes/service.js';
import type { SnapshotService, SnapshotRecord } from '../snapshots/service.js';
import type { JobInfo, JobRegistry } from '../jobs/jobs.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { checkVolumeName } from '../volumes/names.js';
import { init as initRepo, open as openRepo, parseBackupUrl, runBackup, runRestore, runPrune, runVerify, type Repository, type S3Options, type BackupInfo } from './index.js';
import type { BackupHistory, BackupOutcome } from './history.js';
import type { TargetProblem } from '../wire/types.js';

/** A volume's scheduled backups: `-o backup-schedule`, `-o backup-target` and `-o backup-keep`. */
interface BackupPlan {
  schedule: string;
  target: string;
  keep?: string;
}

/** A backup target from ferryd's config (`backupTargets.NAME`). */
export interface BackupTargetConfig {
  url: string;
  /** The repository's password; better: passwordFile. */
  password?: string;
  /** A file whose whole content is the repository's secret (a key file). */
  passwordFile?: string;
  s3?: S3Options;
  /**
   * Keep the snapshot a backup reads as the base of the next one (default true). false: remove it after
   * the backup; for pools without cheap snapshots (ext4, NFS), where that snapshot is a full copy.
   */
  keepBase?: boolean;
}

export interface BackupSettings {
  targets: Record<string, BackupTargetConfig>;
  /** The secret for targets given by URL that match no configured one (else env FERRY_BACKUP_PASSWORD). */
  passwordFile?: string;
}

interface ResolvedTarget {
  url: string;
  name?: string;
  password?: string;
  keyFile?: string;
  s3?: S3Options;
  keepBase?: boolean;
}

/**
 * Backups of volumes, run as jobs inside ferryd: the engine (this directory's other modules) reads a
 * snapshot of the volume, so what is backed up is one point in time, and writes to a target named in the
 * config or given as a URL. Restores make a new volume from a backup URL, on any node that can reach the
 * target.
 */
export class BackupService {
  constructor(
    private readonly volumes: VolumeService,
    private readonly snapshots: SnapshotService,
    private readonly jobs: JobRegistry,
    private readonly settings: BackupSettings,
    private readonly node: string,
    private readonly log: Logger,
  ) {}

  /** Where an unreadable schedule state file is moved aside and reported (set by the daemon). */
  quarantine?: Quarantine;
  /** Where the outcome of every backup is kept (newest success, failing or not, per volume and target). */
  history?: BackupHistory;
  /** Told of every backup that ended, and of a scheduled one that could not start (for /metrics). Must not throw. */
  onBackup?: (o: BackupOutcome) => void;

  private ended(o: BackupOutcome): void {
    this.history?.record(o);
    this.onBackup?.(o);
  }

  /** The name a target is known by in the history and /metrics: its configured name, else its URL. */
  private targetLabel(t: ResolvedTarget): string {
    return t.name ?? t.url;
  }

  /** The schedule state (last slot run per volume); an unreadable file is moved aside and counts as empty. */
  private async scheduleState(file: string): Promise<Record<string, { slot: string; createdAt: string }>> {
    try {
      const st = await readJson<unknown>(file);
      if (st === undefined) return {};
      if (typeof st !== 'object' || st === null || Array.isArray(st)) throw new Error('not an object of volumes');
      return st as Record<string, { slot: string; createdAt: string }>;
    } catch (err) {
      if (!this.quarantine) throw err;
      await this.quarantine.moveAside(file, err, 'No scheduled backup is known to have run: each volume with a backup schedule gets its next scheduled backup now.');
      return {};
    }
  }

  /** A configured target by name, or a URL (which picks up the settings of a configured target with the same URL). */
  resolve(ref: string): ResolvedTarget {
    if (!ref) throw new FerryError('invalid', 'name a backup target: --target NAME (from backupTargets in the config) or --target file:///path or s3://bucket/prefix');
    const named = this.settings.targets[ref];
    let url: string;
    let conf: BackupTargetConfig | undefined = named;
    if (named) url = named.url;
    else if (/^(file|s3):/.test(ref)) {
      url = parseBackupUrl(ref).target;
      conf = Object.values(this.settings.targets).find((t) => parseBackupUrl(t.url).target === url);
    } else {
      const names = Object.keys(this.settings.targets);
      throw new FerryError('invalid', `no backup target named ${JSON.stringify(ref)}; configured: ${names.length ? names.join(', ') : 'none'} (or give a URL: file:///path, s3://bucket/prefix)`);
    }
    const name = named ? ref : Object.entries(this.settings.targets).find(([, t]) => t === conf)?.[0];
    return {
      url,
      ...(name ? { name } : {}),
      ...(conf?.password ? { password: conf.password } : {}),
      ...(conf?.passwordFile ? { keyFile: conf.passwordFile } : !conf?.password && this.settings.passwordFile ? { keyFile: this.settings.passwordFile } : {}),
      ...(!conf?.password && !conf?.passwordFile && !this.settings.passwordFile && process.env.FERRY_BACKUP_PASSWORD ? { password: process.env.FERRY_BACKUP_PASSWORD } : {}),
      ...(conf?.s3 ? { s3: conf.s3 } : {}),
      ...(conf?.keepBase !== undefined ? { keepBase: conf.keepBase } : {}),
    };
  }

  private secretOf(t: ResolvedTarget) {
    return { ...(t.password ? { password: t.password } : {}), ...(t.keyFile ? { keyFile: t.keyFile } : {}), ...(t.s3 ? { s3: t.s3 } : {}) };
  }

  private readonly broken = new Map<string, TargetProblem>();

  /** Configured targets whose repository failed to open the last time ferryd tried (a later success clears it). */
  targetProblems(): TargetProblem[] {
    return [...this.broken.values()].sort((a, b) => a.target.localeCompare(b.target));
  }

  private async open(t: ResolvedTarget): Promise<Repository> {
    try {
      const r = await this.openRepo(t);
      if (t.name) this.broken.delete(t.name);
      return r;
    } catch (err) {
      if (t.name) this.broken.set(t.name, { target: t.name, code: err instanceof FerryError ? err.code : 'internal', message: errorMessage(err), at: new Date().toISOString() });
      throw err;
    }
  }

  private async openRepo(t: ResolvedTarget): Promise<Repository> {
    if (!t.password && !t.keyFile) {
      // an unencrypted repository opens without a secret; an encrypted one says what is missing
      try {
        return await openRepo(t.url, this.secretOf(t));
      } catch (err) {
        if (err instanceof FerryError && err.code === 'bad_password') {
          throw new FerryError('bad_password', `the repository at ${t.url} is encrypted and ferryd has no password for it: set passwordFile for this target in backupTargets, backupPasswordFile, or FERRY_BACKUP_PASSWORD in ferryd's environment`);
        }
        throw err;
      }
    }
    return openRepo(t.url, this.secretOf(t));
  }

  private async withRepo<T>(t: ResolvedTarget, fn: (r: Repository) => Promise<T>): Promise<T> {
    const repo = await this.open(t);
    try {
      return await fn(repo);
    } finally {
      repo.close();
    }
  }

  async init(ref: string, { encryption = 'aes-256-gcm' }: { encryption?: 'aes-256-gcm' | 'none' } = {}): Promise<{ target: string; encrypted: boolean }> {
    const t = this.resolve(ref);
    if (encryption !== 'none' && !t.password && !t.keyFile) {
      throw new FerryError('invalid', `a password is needed to encrypt ${t.url}: set passwordFile for it in backupTargets (or backupPasswordFile, or FERRY_BACKUP_PASSWORD for ferryd); an unencrypted repository only with --no-encryption`);
    }
    const repo = await initRepo(t.url, { ...this.secretOf(t), encryption });
    repo.close();
    this.log.info({ target: t.url, encryption }, 'backup repository initialised');
    return { target: t.url, encrypted: encryption !== 'none' };
  }

  /**
   * Back up a volume: from the given snapshot, or from a fresh one made for it (crash-consistent, like
   * any snapshot; kept as the volume's newest "backup" snapshot so the next one is incremental, unless the
   * target or the volume says `keepBase: false`).
   * The volume, the target, the repository and its password are checked before anything is made: each of
   * them wrong fails here, before a job starts, and leaves no snapshot. A backup that fails after it made its
   * snapshot removes that snapshot again (never one the user gave, never the base of an earlier backup).
   */
  async startBackup(volumeIn: string, opts: { target: string; snapshot?: string; tags?: string[] }): Promise<JobInfo> {
    const volume = checkVolumeName(volumeIn);
    const { shared, createdAt } = this.volumes.get(volume); // not_found at once, not in the job
    const t = this.resolve(opts.target);
    if (opts.snapshot) await this.snapshots.get(volume, opts.snapshot); // a wrong snapshot too
    const repo = await this.open(t); // target there, a repository, the password fits
    const keepBase = this.keepsBase(volume, t);
    const target = this.targetLabel(t);
    const started = Date.now();
    const ended = (ok: boolean, info?: BackupInfo) => {
      const now = Date.now();
      this.ended({ volume, createdAt, target, ok, at: now / 1000, seconds: Math.max(0, (now - started) / 1000), ...(info ? { bytes: info.bytes, bytesAdded: info.bytesAdded } : {}) });
    };
    const job = this.jobs.start('backup', volume, async (report) => {
      let snap: SnapshotRecord | undefined;
      let own = false;
      try {
        report({ phase: 'snapshot' });
        if (opts.snapshot) snap = await this.snapshots.get(volume, opts.snapshot);
        else {
          // unique even for two backups of one volume in the same second (a manual one beside a scheduled one)
          snap = await this.snapshots.create(volume, { name: `backup-${new Date().toISOString().replace(/:/g, '-')}-${randomBytes(2).toString('hex')}`, origin: 'backup' });
          own = true;
        }
        const made = snap;
        const info = await this.snapshots.withReadView(volume, made.id, (tree) =>
          runBackup(repo, tree, {
            volume,
            node: this.node,
            snapshot: made.id,
            tags: [...(opts.tags ?? []), ...(own ? [] : [`snapshot:${made.name}`])],
            compare: 'mtime-size',
            mayHang: shared,
            // while the walk goes on its totals are only what it found so far: no total is better than one that grows
            onProgress: (p) => report({ phase: p.phase === 'files' ? 'upload' : p.phase, filesDone: p.filesDone, filesTotal: p.phase === 'scan' ? undefined : p.filesTotal, bytesDone: p.bytesDone, bytesTotal: p.phase === 'scan' ? undefined : p.bytesTotal, bytesUploaded: p.bytesUploaded }),
          }),
        );
        // keep only the newest snapshot made for backups (the next one is made from what changed since), or none
        if (own) {
          for (const s of await this.snapshots.list(volume)) {
            if (s.origin === 'backup' && (s.id !== made.id || !keepBase)) await this.snapshots.remove(volume, s.id).catch((err) => this.log.warn({ volume, snapshot: s.id, err: errorMessage(err) }, 'could not remove a backup snapshot'));
          }
        }
        this.log.info({ volume, url: info.url, files: info.files, bytes: info.bytes, bytesAdded: info.bytesAdded, ms: info.durationMs, keptBase: own && keepBase }, 'backup created');
        ended(true, info);
        return info;
      } catch (err) {
        ended(false);
        if (own && snap) {
          const failed = snap;
          await this.snapshots.remove(volume, failed.id).then(
            () => this.log.info({ volume, snapshot: failed.id }, 'the snapshot of a failed backup removed'),
            (e) => this.log.warn({ volume, snapshot: failed.id, err: errorMessage(e) }, 'could not remove the snapshot of a failed backup'),
          );
        }
        throw err;
      } finally {
        repo.close();
      }
    }, { target });
    await this.jobs.saved(); // a job acknowledged is listed after a crash (as interrupted)
    return job;
  }

  /**
   * Does a backup of this volume to this target keep its snapshot as the base of the next one? Yes, unless
   * the volume's `backup-keep-base=false` or the target's `keepBase: false` says no (pools without cheap
   * snapshots, where that base costs a full copy: docs/backups.md).
   */
  private keepsBase(volume: string, t: ResolvedTarget): boolean {
    const own = this.volumes.get(volume).options['backup-keep-base'];
    if (own !== undefined) return own !== 'false';
    return t.keepBase ?? true;
  }

  async list(ref: string, volume?: string): Promise<{ target: string; backups: BackupInfo[] }> {
    const t = this.resolve(ref);
    return { target: t.url, backups: await this.withRepo(t, (r) => r.list(volume ? { volume } : {})) };
  }

  private fromUrl(url: string): { t: ResolvedTarget; id: string; volume?: string } {
    const u = parseBackupUrl(url);
    if (!u.backup) throw new FerryError('invalid', `"${url}" names no backup; a backup URL ends in ?backup=ID&volume=NAME (\`ferry backup ls --target T\` lists them)`);
    return { t: this.resolve(u.target), id: u.backup, ...(u.volume ? { volume: u.volume } : {}) };
  }

  async inspect(url: string): Promise<BackupInfo & { tree: { entries: number; chunks: number } }> {
    const { t, id } = this.fromUrl(url);
    return this.withRepo(t, (r) => r.inspect(id));
  }

  async remove(url: string): Promise<{ removed: string }> {
    const { t, id } = this.fromUrl(url);
    await this.withRepo(t, (r) => r.remove(id));
    this.log.info({ url }, 'backup removed (its data goes at the next prune)');
    return { removed: url };
  }

  /** Restore a backup into an empty directory (a new volume's data): used by `-o backup=URL`. */
  async restoreInto(url: string, dir: string, report?: (p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number }) => void): Promise<void> {
    const { t, id } = this.fromUrl(url);
    const res = await this.withRepo(t, (r) => runRestore(r, id, dir, report ? { onProgress: report } : {}));
    for (const w of res.warnings) this.log.warn({ url, warning: w }, 'restore warning');
    this.log.info({ url, files: res.files, bytes: res.bytes, ms: res.durationMs }, 'backup restored');
  }

  /** Restore into a new volume, as a job (the CLI shows its progress). The name must be free: checked before the job. */
  async startRestore(url: string, volumeIn: string, options: Record<string, string> = {}): Promise<JobInfo> {
    const volume = checkVolumeName(volumeIn);
    this.fromUrl(url); // a bad URL fails at once
    this.volumes.parseOptions({ ...options, backup: url }); // so do bad options
    const taken = await this.volumes.lookup(volume).then(() => true, (err: unknown) => {
      if (err instanceof FerryError && err.code === 'not_found') return false;
      throw err;
    });
    if (taken) throw new FerryError('exists', `a volume named ${volume} exists already; restore into a new name (\`ferry backup restore URL NEW_NAME\`), or remove ${volume} first`);
    const job = this.jobs.start('restore', volume, async (report) => {
      report({ phase: 'restore' });
      const v = await this.volumes.create(volume, { ...options, backup: url }, {}, { progress: (p) => report(p) });
      return { volume: v.name, url };
    }, { target: this.targetLabel(this.fromUrl(url).t) });
    await this.jobs.saved();
    return job;
  }

  startPrune(ref: string): JobInfo {
    const t = this.resolve(ref);
    return this.jobs.start('prune', undefined, async (report) => {
      report({ phase: 'prune' });
      return this.withRepo(t, (r) => runPrune(r));
    }, { target: this.targetLabel(t) });
  }

  startVerify(ref: string, readData: boolean): JobInfo {
    const t = this.resolve(ref);
    return this.jobs.start('verify', undefined, async (report) => {
      const phase = readData ? 'reading every pack' : 'checking structure';
      report({ phase });
      // with readData: bytes of the packs read of all, and packs as the "files" (a pack is the unit read)
      const res = await this.withRepo(t, (r) => runVerify(r, { readData, onProgress: (p) => report({ phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.packsDone, filesTotal: p.packsTotal }) }));
      if (!res.ok) {
        // each message names the backups it affects already
        const lines = res.problems.map((p) => p.message);
        throw new FerryError('corrupt', `repository ${t.url} has ${res.problems.length} problem(s):\n  ${lines.join('\n  ')}`, { problems: res.problems });
      }
      return res;
    }, { target: this.targetLabel(t) });
  }

  // ---- schedules ----------------------------------------------------------------------------------

  private scheduler: Scheduler<VolumeInfo, BackupPlan> | undefined;
  private readonly runningScheduled = new Set<string>();
  private readonly afterJobs = new Set<Promise<void>>();

  /** Resolves when every scheduled backup started so far has ended and its bookkeeping (state, retention) is done. */
  async settled(): Promise<void> {
    while (this.afterJobs.size) await Promise.all([...this.afterJobs]);
  }

  /**
   * Scheduled backups (`-o backup-schedule=CRON -o backup-target=T [-o backup-keep=POLICY]`): every tick,
   * a volume whose schedule slot passed since its last scheduled backup gets one (slots missed while
   * ferryd was down collapse into one catch-up run); then its scheduled backups in that target are
   * thinned by the keep policy (restic's forget rules; `ferry backup prune` reclaims the space).
   * The slot is recorded when the backup ends, so one interrupted by a crash runs again at start-up.
   */
  startScheduler(stateDir: string, intervalMs = 15_000, now: () => number = Date.now): void {
    this.scheduler = this.backupScheduler(join(stateDir, 'backup-schedules.json'), now, intervalMs);
    this.scheduler.start();
  }

  async stopScheduler(): Promise<void> {
    await this.scheduler?.stop();
    await this.settled().catch(() => undefined);
  }

  /** One pass (the timer makes them; tests call it with a fake clock). */
  async scheduledTick(file: string, now: () => number): Promise<void> {
    await this.backupScheduler(file, now).passOnce();
  }

  private backupScheduler(file: string, now: () => number, intervalMs?: number): Scheduler<VolumeInfo, BackupPlan> {
    return new Scheduler<VolumeInfo, BackupPlan>(
      this.volumes,
      {
        // an unreadable state is found at start-up, not at the first due backup
        beforePass: async () => void (await this.scheduleState(file)),
        planFor: (v) => {
          const schedule = v.options['backup-schedule'];
          const target = v.options['backup-target'];
          if (!schedule || !target || this.runningScheduled.has(v.name)) return undefined;
          return { schedule, target, ...(v.options['backup-keep'] ? { keep: v.options['backup-keep'] } : {}) };
        },
        lastSlot: async (v) => {
          const state = await this.scheduleState(file);
          const last = state[v.name]?.createdAt === v.createdAt ? state[v.name]!.slot : undefined;
          return last ? new Date(last) : undefined;
        },
        run: (v, plan, slot) => this.startScheduled(v, plan, slot, file, now),
        failed: (v, plan, err) => this.log.error({ volume: v.name, target: plan.target, err: errorMessage(err) }, 'backup scheduler failed'),
      },
      now,
      intervalMs,
      (err) => this.log.error({ err: errorMessage(err) }, 'backup scheduler failed'),
    );
  }

  /** Start a due scheduled backup as a job; its slot is recorded, and older scheduled backups thinned, when it ends. */
  private async startScheduled(v: VolumeInfo, plan: BackupPlan, slot: Date, file: string, now: () => number): Promise<void> {
    let job: JobInfo;
    try {
      job = await this.startBackup(v.name, { target: plan.target, tags: ['scheduled'] });
    } catch (err) {
      this.log.error({ volume: v.name, target: plan.target, err: errorMessage(err) }, 'scheduled backup could not start');
      // a target gone or a wrong password fails every scheduled backup before its job: count it as failing
      let target = plan.target;
      try {
        target = this.targetLabel(this.resolve(plan.target));
      } catch {
        // an unknown target name: keep the name the volume gives
      }
      this.ended({ volume: v.name, createdAt: v.createdAt, target, ok: false, at: now() / 1000 });
      return;
    }
    this.runningScheduled.add(v.name);
    const after = this.jobs.wait(job.id).then(async (done) => {
      try {
        const st = await this.scheduleState(file);
        st[v.name] = { slot: slot.toISOString(), createdAt: v.createdAt };
        await writeJsonAtomic(file, st);
        if (done.state === 'succeeded') {
          this.log.info({ volume: v.name, slot: slot.toISOString(), url: (done.result as BackupInfo).url }, 'scheduled backup');
          // the repository records real times: judge them by the real clock
          if (plan.keep) await this.forgetScheduled(v.name, plan.target, plan.keep, new Date());
        } else {
          this.log.error({ volume: v.name, slot: slot.toISOString(), err: done.error?.message }, 'scheduled backup failed');
        }
      } finally {
        this.runningScheduled.delete(v.name);
      }
    });
    this.afterJobs.add(after);
    void after.catch((err) => this.log.error({ volume: v.name, err: errorMessage(err) }, 'scheduled backup bookkeeping failed')).finally(() => this.afterJobs.delete(after));
  }

  private async forgetScheduled(volume: string, ref: string, keep: string, now: Date): Promise<void> {
    const t = this.resolve(ref);
    await this.withRepo(t, async (repo) => {
      const scheduled = (await repo.list({ volume })).filter((b) => b.tags.includes('scheduled')).map((b) => ({ ...b, createdAt: b.time }));
      const { remove } = applyRetention(scheduled, parseKeepPolicy(keep), now);
      for (const b of remove) await repo.remove(b.id);
      if (remove.length) this.log.info({ volume, target: t.url, forgotten: remove.length, kept: scheduled.length - remove.length }, 'scheduled backups thinned (run `ferry backup prune` to reclaim space)');
    });
  }

  /** Read a password file now, so that a bad path is reported at start-up rather than at the first backup. */
  async checkSecrets(): Promise<void> {
    const files = [this.settings.passwordFile, ...Object.values(this.settings.targets).map((t) => t.passwordFile)].filter((f): f is string => !!f);
    for (const f of files) {
      try {
        await readFile(f);
      } catch (err) {
        throw new FerryError('invalid', `cannot read backup password file ${f}: ${errorMessage(err)}`);
      }
    }
  }
}
