/** ferryd's Prometheus metrics: the series, their labels and the gauges read at each scrape. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { VolumeService } from '../volumes/service.js';
import type { UsageTracker } from '../volumes/usage.js';
import type { JobInfo } from '../jobs/jobs.js';
import type { BackupHistory, BackupOutcome } from '../backup/history.js';
import type { Cluster, NodeStatus } from '../cluster/cluster.js';
import type { VolumeUsage } from '../wire/types.js';
import type { VolumeInfo } from '../volumes/listing.js';
import { volumeSeriesText, type VolumeFamily } from './volume-series.js';

/** The one vocabulary of the `result` label, on every series that has one. */
const result = (ok: boolean): 'ok' | 'error' => (ok ? 'ok' : 'error');

/** Plugin calls are fast (ms) but a Mount of a shared pool or a Remove to the trash may take seconds. */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Snapshots and backups: from milliseconds (reflink of a small volume) to hours (first backup of a big one). */
const LONG_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600];

export interface SnapshotObservation {
  ok: boolean;
  /** Time spent copying the tree (what the snapshot record calls durationMs). */
  seconds?: number;
  volume?: string;
  at?: string;
}

/**
 * ferryd's Prometheus metrics (GET /metrics, text format 0.0.4). Counters and histograms are fed by
 * observer hooks (plugin calls, snapshots, finished jobs); gauges are read from the volume service when
 * scraped, from what it holds in memory (no tree walks, no repository scans). Every `result` label is ok or error.
 */
export class Metrics {
  readonly registry = new Registry();

  private readonly pluginCalls: Counter<'endpoint' | 'result'>;
  private readonly pluginDuration: Histogram<'endpoint'>;
  private readonly snapshotsTotal: Counter<'result'>;
  private readonly snapshotDuration: Histogram;
  private readonly backupsTotal: Counter<'target' | 'result'>;
  private readonly backupDuration: Histogram<'target'>;
  private readonly backupReadBytes: Counter<'target'>;
  private readonly backupAddedBytes: Counter<'target'>;
  private readonly jobsTotal: Counter<'kind' | 'result'>;
  private readonly volumeFamilies: VolumeFamily[];
  private readonly usageOf: ((v: VolumeInfo) => VolumeUsage) | undefined;

  /** Scrapes so far: what perScrape read is read again at the next one. */
  private scrapes = 0;

  /** One read shared by the gauges of one scrape, and made again at the next (however soon it comes). */
  private perScrape<T>(read: () => T): () => T {
    let last: { scrape: number; value: T } | undefined;
    return () => {
      if (last?.scrape !== this.scrapes) last = { scrape: this.scrapes, value: read() };
      return last.value;
    };
  }

  constructor(
    private readonly service: VolumeService,
    opts: {
      processMetrics?: boolean;
      usage?: UsageTracker;
      /** The backup service's record of backups: the per-volume backup series. */
      backups?: BackupHistory;
      /** Shared pools' heartbeats: the per-node series. */
      cluster?: Pick<Cluster, 'active' | 'nodes'>;
      /** ferry_build_info's labels. */
      build?: { version: string; node: string };
    } = {},
  ) {
    const registers = [this.registry];
    // the event-loop delay is sampled every 100 ms, not prom-client's 10: an idle ferryd then wakes ~10 times a
    // second instead of ~100 (30 s idle: 397 context switches instead of 3,036, 100 ms of CPU instead of 170)
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });

    /**
     * A gauge read at each scrape: `fill` sets its series (a value undefined or null is no series); the
     * series of the scrape before are dropped, so what went away (a volume, a pool) leaves no stale series.
     */
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (set: (labels: Record<L, string>, n: number | null | undefined) => void) => void | Promise<void>) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          const rows: Array<[Record<L, string>, number]> = [];
          await fill((labels, n) => {
            if (n !== null && n !== undefined) rows.push([labels, n]);
          });
          this.reset();
          for (const [labels, n] of rows) this.set(labels as Partial<Record<L, string>>, n);
        },
      });

    gauge('ferry_build_info', 'Always 1; the labels say which ferryd this is: version, node (its node name), nodejs', ['version', 'node', 'nodejs'], (set) =>
      set({ version: opts.build?.version ?? 'unknown', node: opts.build?.node ?? 'unknown', nodejs: process.version }, 1),
    );

    // One statfs per pool per scrape, shared by the pool gauges and the volume counts.
    const pools = this.perScrape(() => service.poolStatus());
    const poolGauge = (name: string, help: string, pick: (p: Awaited<ReturnType<VolumeService['poolStatus']>>[number]) => number | undefined) =>
      gauge(name, help, ['pool'], async (set) => {
        for (const p of await pools()) set({ pool: p.name }, pick(p));
      });
    // one pass over the volumes per scrape for the counts by pool (10,000 volumes: a list per gauge and pool was ~10 ms each)
    const byPool = this.perScrape(() => {
      const counts = new Map<string, { all: number; neverBackedUp: number }>();
      for (const v of service.listEach()) {
        let c = counts.get(v.pool);
        if (!c) counts.set(v.pool, (c = { all: 0, neverBackedUp: 0 }));
        c.all++;
        if (opts.backups?.lastSuccess(v) === undefined) c.neverBackedUp++;
      }
      return counts;
    });
    /** Volumes by pool, with a 0 for every pool that has none. */
    const volumesByPool = (name: string, help: string, count: (c: { all: number; neverBackedUp: number }) => number) => poolGauge(name, help, (p) => count(byPool().get(p.name) ?? { all: 0, neverBackedUp: 0 }));
    volumesByPool('ferry_volumes', 'Volumes known to this ferryd, by pool', (c) => c.all);
    const counts = this.perScrape(() => service.counts());
    gauge('ferry_volume_mounts', 'Docker mounts of volumes held on this node (one per container using a volume)', [], (set) => set({}, counts().mounts));
    gauge('ferry_volumes_mounted', 'Volumes with at least one mount on this node', [], (set) => set({}, counts().mounted));
    gauge('ferry_trash_volumes', 'Removed volumes kept in the trash', [], (set) => set({}, counts().trash));
    poolGauge('ferry_pool_up', 'Whether the pool is usable (1) or not (0)', (p) => (p.ok ? 1 : 0));
    poolGauge('ferry_pool_used_bytes', 'Bytes used on the filesystem of the pool', (p) => p.capacity?.usedBytes);
    poolGauge('ferry_pool_free_bytes', 'Bytes free (available to ferryd) on the filesystem of the pool', (p) => p.capacity?.freeBytes);

    // One series per volume this ferryd holds, labelled volume and pool (or target): written as text in one pass
    // at each scrape (volume-series.ts), after the registry's families.
    const usage = opts.usage;
    const history = opts.backups;
    // ISO times in Unix seconds, kept between scrapes (10,000 creation times parsed at each scrape: ~3 ms)
    const parsed = new Map<string, number>();
    const seconds = (iso: string | null | undefined): number | null => {
      if (!iso) return null;
      let s = parsed.get(iso);
      if (s === undefined) {
        if (parsed.size >= 100_000) parsed.clear(); // (the walk times of a long run)
        parsed.set(iso, (s = Date.parse(iso) / 1000));
      }
      return s;
    };
    this.volumeFamilies = [
      { name: 'ferry_volume_created_timestamp_seconds', help: 'When a volume was created, in Unix seconds: one series per volume, to join with the per-volume backup series', label: 'pool', series: (v, _u, put) => put(v.pool, seconds(v.createdAt)) },
      // Space per volume, from the usage tracker's cache (no walk at scrape time); a figure not measured is no series.
      ...(usage
        ? ([
            { name: 'ferry_volume_data_bytes', help: 'Bytes of a volume\'s live data (allocated, like du), from a cached walk', label: 'pool', series: (v, u, put) => put(v.pool, u?.dataBytes) },
            { name: 'ferry_volume_snapshot_bytes', help: 'Bytes only the snapshots of a volume hold (freed if they all went); absent where not measured (btrfs, reflink)', label: 'pool', series: (v, u, put) => put(v.pool, u?.snapshotBytes) },
            { name: 'ferry_volume_usage_measured_timestamp_seconds', help: 'When the data of a volume was last walked, in Unix seconds; age = time() - this', label: 'pool', series: (v, u, put) => put(v.pool, seconds(u?.measuredAt)) },
          ] satisfies VolumeFamily[])
        : []),
      // per volume and target, for the volumes this ferryd holds (this incarnation); a volume never backed up has no series here
      ...(history
        ? ([
            { name: 'ferry_volume_last_backup_timestamp_seconds', help: 'When the newest successful backup of a volume to a target by this ferryd finished, in Unix seconds; age = time() - this', label: 'target', series: (v, _u, put) => { for (const [target, r] of history.targets(v)) put(target, r.lastSuccessAt); } },
            { name: 'ferry_volume_backup_failing', help: 'Whether the newest backup of a volume to a target by this ferryd failed (1) or not (0)', label: 'target', series: (v, _u, put) => { for (const [target, r] of history.targets(v)) put(target, r.failing ? 1 : 0); } },
          ] satisfies VolumeFamily[])
        : []),
    ];
    this.usageOf = usage ? (v) => usage.of(v) : undefined;
    if (usage) {
      gauge('ferry_volume_trash_bytes', 'Bytes held in the trash by removed volumes of this name (data and snapshots), until purged', ['volume', 'pool'], (set) => {
        for (const t of usage.trashByName()) set({ volume: t.volume, pool: t.pool }, t.bytes);
      });
    }

    this.pluginCalls = new Counter({ name: 'ferry_plugin_calls_total', help: 'Docker volume plugin calls, by endpoint and result (ok or error)', labelNames: ['endpoint', 'result'], registers });
    this.pluginDuration = new Histogram({ name: 'ferry_plugin_call_duration_seconds', help: 'Time to answer a Docker volume plugin call', labelNames: ['endpoint'], buckets: CALL_BUCKETS, registers });
    this.snapshotsTotal = new Counter({ name: 'ferry_snapshots_total', help: 'Snapshots made (any origin: manual, schedule, history, backup), by result (ok or error)', labelNames: ['result'], registers });
    this.snapshotDuration = new Histogram({ name: 'ferry_snapshot_duration_seconds', help: 'Time to make a snapshot (copying the tree)', buckets: LONG_BUCKETS, registers });
    this.backupsTotal = new Counter({ name: 'ferry_backups_total', help: 'Backups run by this ferryd, by target and result (ok or error); a scheduled backup refused before its job (target gone, wrong password) counts as an error', labelNames: ['target', 'result'], registers });
    this.backupDuration = new Histogram({ name: 'ferry_backup_duration_seconds', help: 'Wall time of a successful backup job (snapshot and upload), by target', labelNames: ['target'], buckets: LONG_BUCKETS, registers });
    this.backupReadBytes = new Counter({ name: 'ferry_backup_read_bytes_total', help: 'Bytes of volume data read by successful backups, by target', labelNames: ['target'], registers });
    this.backupAddedBytes = new Counter({ name: 'ferry_backup_added_bytes_total', help: 'Bytes added to backup repositories (after deduplication and compression), by target', labelNames: ['target'], registers });
    this.jobsTotal = new Counter({ name: 'ferry_jobs_total', help: 'Jobs (backup, restore, verify, prune) finished, by kind and result (ok or error)', labelNames: ['kind', 'result'], registers });

    if (history) volumesByPool('ferry_volumes_never_backed_up', 'Volumes with no successful backup by this ferryd to any target, by pool', (c) => c.neverBackedUp);

    const cluster = opts.cluster;
    if (cluster) {
      // the heartbeats of every node seen in a shared pool, as this ferryd reads them; none without shared pools
      const nodes = this.perScrape(async () => (cluster.active ? cluster.nodes() : []));
      const nodeGauge = (name: string, help: string, pick: (n: NodeStatus) => number) =>
        gauge(name, help, ['node'], async (set) => {
          for (const n of await nodes()) set({ node: n.node }, pick(n));
        });
      nodeGauge('ferry_cluster_node_up', 'Whether a node of the shared pools beat within the node timeout (1) or not (0), as this ferryd sees it', (n) => (n.alive ? 1 : 0));
      nodeGauge('ferry_cluster_node_last_heartbeat_timestamp_seconds', 'When a node of the shared pools last beat, in Unix seconds, as this ferryd reads it', (n) => Date.parse(n.lastSeen) / 1000);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async text(): Promise<string> {
    this.scrapes++;
    // (the registry's text ends with a newline; the families are separated by a blank line, as it separates its own)
    return `${await this.registry.metrics()}\n${volumeSeriesText(this.volumeFamilies, this.service.listEach(), this.usageOf)}\n`;
  }

  /** The plugin server's observer hook. */
  pluginCall = (endpoint: string, ok: boolean, seconds: number): void => {
    const e = endpoint.replace(/^\//, '');
    this.pluginCalls.inc({ endpoint: e, result: result(ok) });
    this.pluginDuration.observe({ endpoint: e }, seconds);
  };

  /** The snapshot service's observer hook. */
  snapshot = (o: SnapshotObservation): void => {
    this.snapshotsTotal.inc({ result: result(o.ok) });
    if (o.ok && o.seconds !== undefined) this.snapshotDuration.observe(o.seconds);
  };

  /** The job registry's observer hook: called once per job when it ends. */
  jobFinished = (job: JobInfo): void => {
    this.jobsTotal.inc({ kind: job.kind, result: result(job.state === 'succeeded') });
  };

  /** The backup service's observer hook: every backup that ended (and a scheduled one refused before its job). */
  backup = (o: BackupOutcome): void => {
    this.backupsTotal.inc({ target: o.target, result: result(o.ok) });
    if (!o.ok) return;
    if (o.seconds !== undefined) this.backupDuration.observe({ target: o.target }, o.seconds);
    if (o.bytes !== undefined) this.backupReadBytes.inc({ target: o.target }, o.bytes);
    if (o.bytesAdded !== undefined) this.backupAddedBytes.inc({ target: o.target }, o.bytesAdded);
  };
}
