import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { VolumeService } from '../volumes/service.js';
import type { UsageTracker } from '../volumes/usage.js';
import type { JobInfo } from '../jobs/jobs.js';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import type { Quarantine } from '../util/quarantine.js';
import { errorMessage } from '../util/errors.js';

/** Plugin calls are fast (ms) but a Mount of a shared pool or a Remove to the trash may take seconds. */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Snapshots and backups: from milliseconds (reflink of a small volume) to hours (first backup of a big one). */
const LONG_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600];

export interface SnapshotObservation {
  ok: boolean;
  /** Time spent copying the tree (what the snapshot record calls durationMs). */
  seconds?: number;
}

/**
 * ferryd's Prometheus metrics (GET /metrics, text format 0.0.4). Counters and histograms are fed by
 * observer hooks (plugin calls, snapshots, finished jobs); gauges are read from the volume service when
 * scraped, from what it holds in memory (no tree walks, no repository scans).
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly lastBackup = new Map<string, number>();

  private readonly pluginCalls: Counter<'endpoint' | 'result'>;
  private readonly pluginDuration: Histogram<'endpoint'>;
  private readonly snapshotsTotal: Counter<'result'>;
  private readonly snapshotDuration: Histogram;
  private readonly backupsTotal: Counter<'result'>;
  private readonly backupDuration: Histogram;
  private readonly backupBytes: Counter;
  private readonly backupBytesAdded: Counter;
  private readonly jobsTotal: Counter<'kind' | 'result'>;

  private lastBackupSaving: Promise<void> = Promise.resolve();

  constructor(
    service: VolumeService,
    private readonly opts: { processMetrics?: boolean; lastBackupFile?: string; onError?: (what: string, err: string) => void; usage?: UsageTracker; quarantine?: Quarantine } = {},
  ) {
    const registers = [this.registry];
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    // One statfs per pool per scrape, shared by the pool gauges and ferry_volumes.
    let poolRead: { at: number; value: ReturnType<VolumeService['poolStatus']> } | undefined;
    const pools = () => {
      if (!poolRead || Date.now() - poolRead.at > 1000) poolRead = { at: Date.now(), value: service.poolStatus() };
      return poolRead.value;
    };
    new Gauge({
      name: 'ferry_volumes',
      help: 'Volumes known to this ferryd, by pool',
      labelNames: ['pool'],
      registers,
      async collect() {
        this.reset();
        const byPool = new Map<string, number>();
        for (const p of await pools()) byPool.set(p.name, 0);
        for (const v of service.list()) byPool.set(v.pool, (byPool.get(v.pool) ?? 0) + 1);
        for (const [pool, n] of byPool) this.set({ pool }, n);
      },
    });
    new Gauge({
      name: 'ferry_volume_mounts',
      help: 'Docker mounts of volumes held on this node (one per container using a volume)',
      registers,
      collect() {
        this.set(service.counts().mounts);
      },
    });
    new Gauge({
      name: 'ferry_volumes_mounted',
      help: 'Volumes with at least one mount on this node',
      registers,
      collect() {
        this.set(service.counts().mounted);
      },
    });
    new Gauge({
      name: 'ferry_trash_volumes',
      help: 'Removed volumes kept in the trash',
      registers,
      collect() {
        this.set(service.counts().trash);
      },
    });
    const poolGauge = (name: string, help: string, pick: (p: Awaited<ReturnType<VolumeService['poolStatus']>>[number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'],
        registers,
        async collect() {
          this.reset();
          for (const p of await pools()) {
            const v = pick(p);
            if (v !== undefined) this.set({ pool: p.name }, v);
          }
        },
      });
    // Space per volume, from the usage tracker's cache (no walk at scrape time); a figure not measured is no series.
    const usage = opts.usage;
    if (usage) {
      const volumeGauge = (name: string, help: string, pick: (u: ReturnType<UsageTracker['of']>) => number | null) =>
        new Gauge({
          name,
          help,
          labelNames: ['volume', 'pool'],
          registers,
          collect() {
            this.reset();
            for (const v of service.list()) {
              const n = pick(usage.of(v));
              if (n !== null) this.set({ volume: v.name, pool: v.pool }, n);
            }
          },
        });
      volumeGauge('ferry_volume_data_bytes', 'Bytes of a volume\'s live data (allocated, like du), from a cached walk', (u) => u.dataBytes);
      volumeGauge('ferry_volume_snapshot_bytes', 'Bytes only the snapshots of a volume hold (freed if they all went); absent where not measured (btrfs, reflink)', (u) => u.snapshotBytes);
      volumeGauge('ferry_volume_usage_measured_timestamp_seconds', 'When the data of a volume was last walked, in Unix seconds; age = time() - this', (u) => (u.measuredAt ? Date.parse(u.measuredAt) / 1000 : null));
      new Gauge({
        name: 'ferry_volume_trash_bytes',
        help: 'Bytes held in the trash by removed volumes of this name (data and snapshots), until purged',
        labelNames: ['volume', 'pool'],
        registers,
        collect() {
          this.reset();
          for (const t of usage.trashByName()) this.set({ volume: t.volume, pool: t.pool }, t.bytes);
        },
      });
    }
    poolGauge('ferry_pool_up', 'Whether the pool is usable (1) or not (0)', (p) => (p.ok ? 1 : 0));
    poolGauge('ferry_pool_bytes_used', 'Bytes used on the filesystem of the pool', (p) => p.capacity?.usedBytes);
    poolGauge('ferry_pool_bytes_free', 'Bytes free (available to ferryd) on the filesystem of the pool', (p) => p.capacity?.freeBytes);

    this.pluginCalls = new Counter({ name: 'ferry_plugin_calls_total', help: 'Docker volume plugin calls, by endpoint and result (ok or error)', labelNames: ['endpoint', 'result'], registers });
    this.pluginDuration = new Histogram({ name: 'ferry_plugin_call_duration_seconds', help: 'Time to answer a Docker volume plugin call', labelNames: ['endpoint'], buckets: CALL_BUCKETS, registers });
    this.snapshotsTotal = new Counter({ name: 'ferry_snapshots_total', help: 'Snapshots made (any origin: manual, schedule, history, backup), by result', labelNames: ['result'], registers });
    this.snapshotDuration = new Histogram({ name: 'ferry_snapshot_duration_seconds', help: 'Time to make a snapshot (copying the tree)', buckets: LONG_BUCKETS, registers });
    this.backupsTotal = new Counter({ name: 'ferry_backups_total', help: 'Backup jobs run by this ferryd, by result (success or failure)', labelNames: ['result'], registers });
    this.backupDuration = new Histogram({ name: 'ferry_backup_duration_seconds', help: 'Wall time of a successful backup job (snapshot and upload)', buckets: LONG_BUCKETS, registers });
    this.backupBytes = new Counter({ name: 'ferry_backup_bytes_total', help: 'Bytes of volume data read by successful backups', registers });
    this.backupBytesAdded = new Counter({ name: 'ferry_backup_bytes_added_total', help: 'Bytes added to backup repositories (after deduplication and compression)', registers });
    this.jobsTotal = new Counter({ name: 'ferry_jobs_total', help: 'Jobs (backup, restore, verify, prune) finished, by kind and result', labelNames: ['kind', 'result'], registers });
    const lastBackup = this.lastBackup;
    new Gauge({
      name: 'ferry_last_backup_timestamp_seconds',
      help: 'When the newest successful backup of a volume made by this ferryd finished, in Unix seconds; age = time() - this',
      labelNames: ['volume'],
      registers,
      collect() {
        this.reset();
        const live = new Set(service.list().map((v) => v.name));
        for (const [volume, t] of lastBackup) if (live.has(volume)) this.set({ volume }, t);
      },
    });
    new Gauge({
      name: 'ferry_last_backup_age_seconds',
      help: 'Seconds since the newest successful backup of a volume made by this ferryd',
      labelNames: ['volume'],
      registers,
      collect() {
        this.reset();
        const live = new Set(service.list().map((v) => v.name));
        const now = Date.now() / 1000;
        for (const [volume, t] of lastBackup) if (live.has(volume)) this.set({ volume }, Math.max(0, now - t));
      },
    });
  }

  /** Read the last-backup times kept across restarts (DATA_DIR/last-backups.json), when there is such a file. */
  async load(): Promise<void> {
    if (!this.opts.lastBackupFile) return;
    try {
      const saved = await readJson<Record<string, unknown>>(this.opts.lastBackupFile);
      for (const [volume, t] of Object.entries(saved ?? {})) if (typeof t === 'number' && Number.isFinite(t)) this.lastBackup.set(volume, t);
    } catch (err) {
      if (this.opts.quarantine) await this.opts.quarantine.moveAside(this.opts.lastBackupFile, err, 'The last-backup metrics start empty: ferry_last_backup_* has no value for a volume until its next backup by this ferryd.').catch((e: unknown) => this.opts.onError?.(`cannot move ${this.opts.lastBackupFile} aside`, errorMessage(e)));
      else this.opts.onError?.(`cannot read ${this.opts.lastBackupFile}; last-backup metrics start empty`, errorMessage(err));
    }
  }

  private saveLastBackups(): void {
    const file = this.opts.lastBackupFile;
    if (!file) return;
    this.lastBackupSaving = this.lastBackupSaving
      .then(() => writeJsonAtomic(file, Object.fromEntries(this.lastBackup)))
      .catch((err: unknown) => this.opts.onError?.(`cannot write ${file}`, errorMessage(err)));
  }

  /** Wait for a pending write (at shutdown). */
  flush(): Promise<void> {
    return this.lastBackupSaving;
  }

  /** When each volume's newest successful backup by this ferryd finished (Unix seconds), for GET /v1/volumes. */
  lastBackups(): ReadonlyMap<string, number> {
    return this.lastBackup;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The plugin server's observer hook. */
  pluginCall = (endpoint: string, ok: boolean, seconds: number): void => {
    const e = endpoint.replace(/^\//, '');
    this.pluginCalls.inc({ endpoint: e, result: ok ? 'ok' : 'error' });
    this.pluginDuration.observe({ endpoint: e }, seconds);
  };

  /** The snapshot service's observer hook. */
  snapshot = (o: SnapshotObservation): void => {
    this.snapshotsTotal.inc({ result: o.ok ? 'success' : 'failure' });
    if (o.ok && o.seconds !== undefined) this.snapshotDuration.observe(o.seconds);
  };

  /** The job registry's observer hook: called once per job when it ends. */
  jobFinished = (job: JobInfo): void => {
    const ok = job.state === 'succeeded';
    this.jobsTotal.inc({ kind: job.kind, result: ok ? 'success' : 'failure' });
    if (job.kind !== 'backup') return;
    this.backupsTotal.inc({ result: ok ? 'success' : 'failure' });
    if (!ok) return;
    const end = job.finishedAt ? Date.parse(job.finishedAt) : Date.now();
    this.backupDuration.observe(Math.max(0, (end - Date.parse(job.startedAt)) / 1000));
    const info = job.result as { bytes?: unknown; bytesAdded?: unknown } | undefined;
    if (typeof info?.bytes === 'number') this.backupBytes.inc(info.bytes);
    if (typeof info?.bytesAdded === 'number') this.backupBytesAdded.inc(info.bytesAdded);
    if (job.volume) {
      this.lastBackup.set(job.volume, end / 1000);
      this.saveLastBackups();
    }
  };
}
