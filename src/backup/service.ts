/** The backup service: backups, restores, verify and prune as jobs (the targets are targets.ts', the schedules schedules.ts'). */
import { randomBytes } from 'node:crypto';
import type { Quarantine } from '../util/quarantine.js';
import type { Logger } from 'pino';
import type { VolumeInfo, VolumeService } from '../volumes/service.js';
import type { SnapshotService, SnapshotRecord } from '../snapshots/service.js';
import type { JobInfo, JobRegistry, ProgressReporter } from '../jobs/jobs.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { pauseAt } from '../util/test-pause.js';
import { shown } from '../util/shown.js';
import { KeyedLock } from '../util/keyed-lock.js';
import { checkVolumeName } from '../volumes/names.js';
import { parseBackupUrl, runBackup, runRestore, runPrune, runVerify, type BackupInfo, type Repository } from './index.js';
import { Targets, type BackupSettings, type ResolvedTarget } from './targets.js';
import { ScheduledBackups } from './schedules.js';
import type { BackupHistory, BackupOutcome } from './history.js';
import type { DockerRegistration, RestoreResult, TargetProblem, VolumeSchedule } from '../wire/types.js';

export type { BackupSettings, BackupTargetConfig } from './targets.js';

/**
 * Backups of volumes, run as jobs inside ferryd: the engine (this directory's other modules) reads a
 * snapshot of the volume (as consistent as the pool's snapshots are: docs/snapshots.md), and writes to a target named in the
 * config or given as a URL. Restores make a new volume from a backup URL, on any node that can reach the
 * target.
 */
/**
 * A backup removes the snapshots earlier backups of the volume kept as bases, but those another node made only
 * once they are this old: until then a backup there may be reading one (a shared volume, backed up from two nodes).
 */
const OTHER_NODES_BASES_MS = 7 * 24 * 3_600_000;

export class BackupService {
  private readonly targets: Targets;
  private readonly schedules: ScheduledBackups;
  /** Backups of one volume, one at a time (startBackup says why). */
  private readonly oneAtATime = new KeyedLock();

  constructor(
    private readonly volumes: VolumeService,
    private readonly snapshots: SnapshotService,
    private readonly jobs: JobRegistry,
    settings: BackupSettings,
    private readonly node: string,
    private readonly log: Logger,
  ) {
    this.targets = new Targets(settings, log);
    this.schedules = new ScheduledBackups({
      volumes,
      jobs,
      targets: this.targets,
      log,
      quarantine: () => this.quarantine,
      startBackup: (volume, opts) => this.startBackup(volume, opts),
      ended: (o) => this.ended(o),
    });
  }

  /** Where an unreadable schedule state file is moved aside and reported (set by the daemon). */
  quarantine?: Quarantine;
  /** Where the outcome of every backup is kept (newest success, failing or not, per volume and target). */
  history?: BackupHistory;
  /** Told of every backup that ended, and of a scheduled one that could not start (for /metrics). Must not throw. */
  onBackup?: (o: BackupOutcome) => void;
  /** A volume this service made (a restore into a new volume): ferryd puts it into Docker's store (docker/registration.ts). */
  onVolumeMade?: (name: string) => Promise<DockerRegistration>;

  private ended(o: BackupOutcome): void {
    this.history?.record(o);
    this.onBackup?.(o);
  }

  /** A configured target by name, or a URL (which picks up the settings of a configured target with the same URL). */
  resolve(ref: string): ResolvedTarget {
    return this.targets.resolve(ref);
  }

  /** Configured targets whose repository failed to open the last time ferryd tried (a later success clears it). */
  targetProblems(): TargetProblem[] {
    return this.targets.problems();
  }

  /** Create a repository at a target. */
  init(ref: string, opts: { encryption?: 'aes-256-gcm' | 'none' } = {}): Promise<{ target: string; encrypted: boolean }> {
    return this.targets.init(ref, opts);
  }

  /** Read the password files now, so that a bad path is reported at start-up rather than at the first backup. */
  checkSecrets(): Promise<void> {
    return this.targets.checkSecrets();
  }

  private withRepo<T>(t: ResolvedTarget, fn: (r: Repository) => Promise<T>): Promise<T> {
    return this.targets.withRepo(t, fn);
  }

  /**
   * Back up a volume: from the given snapshot, or from a fresh one made for it (as consistent as any
   * snapshot of its pool; kept as the volume's newest "backup" snapshot so the next one is incremental, unless the
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
    const repo = await this.targets.open(t); // target there, a repository, the password fits
    const keepBase = this.keepsBase(volume, t);
    const target = this.targets.label(t);
    let started = Date.now();
    const ended = (ok: boolean, info?: BackupInfo) => {
      const now = Date.now();
      this.ended({ volume, createdAt, target, ok, at: now / 1000, seconds: Math.max(0, (now - started) / 1000), ...(info ? { bytes: info.bytes, bytesAdded: info.bytesAdded } : {}) });
    };
    const backup = async (report: ProgressReporter): Promise<BackupInfo> => {
      started = Date.now(); // (after any wait for another backup of the volume)
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
        await pauseAt('backup-snapshot-made'); // (a race test: another node's backup of the volume runs meanwhile)
        const info = await this.snapshots.withReadView(volume, made.id, (tree, identity) =>
          runBackup(repo, tree, {
            volume,
            node: this.node,
            snapshot: made.id,
            // (how consistent the snapshot it read is: file by file on a hard-link pool that containers wrote to)
            tags: [...(opts.tags ?? []), ...(own ? [] : [`snapshot:${made.name}`]), `consistency:${made.consistency}`],
            // (a btrfs snapshot keeps the live inodes and ctimes itself; other snapshots are copies: their manifest has them)
            ...(identity ? { identity } : {}),
            mayHang: shared,
            fixed: `snapshot ${made.name}`,
            // while the walk goes on its totals are only what it found so far: no total is better than one that grows
            onProgress: (p) => report({ phase: p.phase === 'files' ? 'upload' : p.phase, filesDone: p.filesDone, filesTotal: p.phase === 'scan' ? undefined : p.filesTotal, bytesDone: p.bytesDone, bytesTotal: p.phase === 'scan' ? undefined : p.bytesTotal, bytesUploaded: p.bytesUploaded }),
          }),
        );
        // keep only the newest snapshot made for backups (the next one is made from what changed since), or none.
        // Of a shared volume, another node's are its own (its backup may be reading one now): left to it, unless
        // so old that no backup can still be reading it (that node is gone, or backs up no more)
        if (own) {
          const othersBefore = Date.now() - OTHER_NODES_BASES_MS;
          for (const s of await this.snapshots.list(volume)) {
            if (s.node !== this.node && Date.parse(s.createdAt) > othersBefore) continue;
            if (s.origin === 'backup' && (s.id !== made.id || !keepBase)) await this.snapshots.remove(volume, s.id).catch((err) => this.log.warn({ volume, snapshot: s.id, err: errorMessage(err) }, 'could not remove a backup snapshot'));
          }
        }
        this.log.info({ volume, url: info.url, files: info.files, bytes: info.bytes, bytesAdded: info.bytesAdded, ms: info.durationMs, keptBase: own && keepBase }, 'backup created');
        ended(true, info);
        return info;
      } catch (caught) {
        ended(false);
        let err = caught;
        // the snapshot it read removed meanwhile (by hand, or before ferryd knew another node reads it): say so,
        // rather than "ENOENT" or "Unknown system error -116" (ESTALE, on a share)
        if (snap && !(caught instanceof FerryError && caught.code === 'unavailable')) {
          const gone = await this.snapshots.get(volume, snap.id).then(() => false, (e: unknown) => e instanceof FerryError && e.code === 'not_found');
          if (gone) err = new FerryError('unavailable', `backup of ${volume}: snapshot ${snap.name}, which it read, was removed while it was read (${errorMessage(caught)}); no backup was recorded, run it again`);
        }
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
    };
    // A second backup of the volume (a manual one beside a scheduled one) waits for the first: run together,
    // each would remove the other's snapshot when it ends, and no base would stay for the next one.
    const job = this.jobs.start('backup', volume, async (report) => {
      if (this.oneAtATime.busy(volume)) report({ phase: 'wait' });
      return this.oneAtATime.run(volume, () => backup(report));
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

  /**
   * The backup a URL names: its id (or a unique prefix of it) and, when the URL says, its volume. The URL's
   * volume= says which volume the caller means: a mix-up of two URLs is refused, never acted on.
   */
  private async backupOf(r: Repository, url: string, id: string, volume: string | undefined): Promise<BackupInfo> {
    const info = r.info(await r.loadSnapshot(id));
    if (volume !== undefined && info.volume !== volume) {
      throw new FerryError('invalid', `backup ${info.id} of ${shown(url)} is a backup of volume ${shown(info.volume)}, not of ${shown(volume)}: check the URL (\`ferry backup ls --target T\` lists each backup's URL)`);
    }
    return info;
  }

  async inspect(url: string): Promise<BackupInfo & { tree: { entries: number; chunks: number } }> {
    const { t, id, volume } = this.fromUrl(url);
    return this.withRepo(t, async (r) => r.inspect((await this.backupOf(r, url, id, volume)).id));
  }

  /** Forget a backup (its data goes at the next prune); answers the full URL of the backup removed. */
  async remove(url: string): Promise<{ removed: string }> {
    const { t, id, volume } = this.fromUrl(url);
    const removed = await this.withRepo(t, async (r) => {
      const b = await this.backupOf(r, url, id, volume);
      await r.remove(b.id);
      return b.url;
    });
    this.log.info({ url: removed }, 'backup removed (its data goes at the next prune)');
    return { removed };
  }

  /** Restore a backup into an empty directory (a new volume's data): used by `-o backup=URL`. */
  async restoreInto(url: string, dir: string, report?: (p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number }) => void): Promise<void> {
    const { t, id, volume } = this.fromUrl(url);
    const res = await this.withRepo(t, async (r) => {
      // (the snapshot is small: runRestore reads it again rather than take it from here)
      if (volume !== undefined) await this.backupOf(r, url, id, volume);
      return runRestore(r, id, dir, report ? { onProgress: report } : {});
    });
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
      // (a name Docker holds for another driver, its `local` one: containers would get that volume, not this one)
      const registration = await this.onVolumeMade?.(v.name);
      const result: RestoreResult = { volume: v.name, url, ...(registration ? { registration } : {}) };
      return result;
    }, { target: this.targets.label(this.fromUrl(url).t) });
    await this.jobs.saved();
    return job;
  }

  startPrune(ref: string): JobInfo {
    const t = this.resolve(ref);
    return this.jobs.start('prune', undefined, async (report) => {
      report({ phase: 'prune' });
      return this.withRepo(t, (r) => runPrune(r));
    }, { target: this.targets.label(t) });
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
    }, { target: this.targets.label(t) });
  }

  // ---- schedules (schedules.ts) -------------------------------------------------------------------

  /** Resolves when every scheduled backup started so far has ended and its bookkeeping (state, retention) is done. */
  settled(): Promise<void> {
    return this.schedules.settled();
  }

  /** Scheduled backups (`-o backup-schedule=CRON -o backup-target=T [-o backup-keep=POLICY]`): see ScheduledBackups.start. */
  startScheduler(stateDir: string, intervalMs = 15_000, now: () => number = Date.now): void {
    this.schedules.start(stateDir, intervalMs, now);
  }

  /** The volume's backup schedule and its next run, if it has one. */
  schedule(volume: VolumeInfo, now = new Date()): Promise<VolumeSchedule | undefined> {
    return this.schedules.describe(volume, now);
  }

  stopScheduler(): Promise<void> {
    return this.schedules.stop();
  }

  /** One pass (the timer makes them; tests call it with a fake clock). */
  scheduledTick(file: string, now: () => number): Promise<void> {
    return this.schedules.tick(file, now);
  }
}
