import { join } from 'node:path';
import { mkdir, unlink } from 'node:fs/promises';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { DaemonConfig } from './config.js';
import { Catalog } from '../volumes/catalog.js';
import { VolumeService } from '../volumes/service.js';
import { SnapshotService } from '../snapshots/service.js';
import { SnapshotScheduler } from '../snapshots/scheduler.js';
import { DirPool } from '../pools/dir.js';
import type { Pool } from '../pools/pool.js';
import { DockerClient } from '../docker/client.js';
import { Cluster } from '../cluster/cluster.js';
import { JobRegistry } from '../jobs/jobs.js';
import { BackupService } from '../backup/service.js';
import { buildPluginServer } from '../plugin/server.js';
import { buildApiServer, type DaemonFacts } from '../api/server.js';
import { TokenStore } from '../api/tokens.js';
import { Metrics } from '../api/metrics.js';
import { listenTcp, readTls } from '../api/tcp.js';
import { UI_DIR } from '../api/ui.js';
import { listenUnix } from '../util/unix-listen.js';
import { VERSION } from '../version.js';
import { StateWarnings } from '../util/state-warnings.js';
import { Quarantine } from '../util/quarantine.js';

/** Sweep the trash often enough that an entry outlives its retention by at most a quarter of it (10 min at most). */
const trashSweepMs = (retentionMs: number) => Math.min(10 * 60_000, Math.max(1000, Math.floor(retentionMs / 4)));

export interface RunningDaemon {
  service: VolumeService;
  log: Logger;
  stop(): Promise<void>;
}

/** Wire ferryd together: catalog and pools → volume service → plugin protocol and control API. */
export async function startDaemon(config: DaemonConfig, log: Logger = pino({ level: config.logLevel })): Promise<RunningDaemon> {
  const t0 = performance.now();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const warnings = new StateWarnings();
  const quarantine = new Quarantine(warnings, log);
  const pools = new Map<string, Pool>([['local', new DirPool('local', config.dataDir)]]);
  for (const [name, p] of Object.entries(config.pools)) {
    pools.set(name, new DirPool(name, p.path, { shared: p.shared, ...(p.mount ? { mount: p.mount } : {}) }));
  }
  const cluster = new Cluster([...pools.values()], {
    node: config.node,
    version: VERSION,
    heartbeatMs: config.heartbeatIntervalMs,
    nodeTimeoutMs: config.nodeTimeoutMs,
    log,
    quarantine,
  });
  const docker = new DockerClient(config.dockerHost);
  let snapshots: SnapshotService | undefined;
  let backups: BackupService | undefined;
  const service = new VolumeService({
    catalog: new Catalog(join(config.dataDir, 'catalog'), quarantine),
    quarantine,
    pools,
    defaultPool: config.defaultPool,
    node: config.node,
    cluster,
    roDir: join(config.dataDir, 'ro'),
    trashRetentionMs: config.trashRetentionMs,
    docker,
    log,
    resolveClone: (from) => snapshots!.cloneSource(from),
    restoreBackup: (url, dir, report) => backups!.restoreInto(url, dir, report),
  });
  snapshots = new SnapshotService(service, log, docker);
  snapshots.quarantine = quarantine;
  const jobs = new JobRegistry(log);
  backups = new BackupService(service, snapshots, jobs, { targets: config.backupTargets, ...(config.backupPasswordFile ? { passwordFile: config.backupPasswordFile } : {}) }, config.node, log);
  backups.quarantine = quarantine;
  await backups.checkSecrets();
  await service.start();
  await snapshots.recover();
  // shared pools: beat, learn the cluster's volumes and re-publish what is mounted here, before Docker can ask
  cluster.onTick = () => service.refreshAttachments();
  await cluster.start();
  for (const p of pools.values()) {
    const st = await p.status();
    if (!st.ok) log.error({ pool: p.name, problem: st.problem }, 'pool is not usable; its volumes cannot be created or mounted until it is');
  }
  const scheduler = new SnapshotScheduler(service, snapshots, config.snapshotSchedules, log);

  // Volume Hub: API tokens, metrics fed by observer hooks, the API over TCP when asked for.
  const tokens = TokenStore.inDataDir(config.dataDir, log, quarantine);
  await tokens.load();
  const metrics = new Metrics(service, { lastBackupFile: join(config.dataDir, 'last-backups.json'), onError: (what, err) => log.warn({ err }, what), quarantine });
  await metrics.load();
  snapshots.onSnapshot = metrics.snapshot;
  jobs.onFinished = metrics.jobFinished;
  const tls = config.apiTls ? await readTls(config.apiTls) : undefined;

  const plugin = buildPluginServer({ service, log, scope: () => (cluster.active ? 'global' : 'local'), observe: metrics.pluginCall });
  const facts: DaemonFacts = {
    version: VERSION,
    node: config.node,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    dataDir: config.dataDir,
    pluginSocket: config.pluginSocket,
    apiSocket: config.apiSocket,
    trashRetention: config.trashRetention,
    backupTargets: Object.keys(config.backupTargets),
    warnings,
  };
  const api = buildApiServer(service, snapshots, facts, log, cluster, { jobs, backups }, { tokens, metrics });
  const servers: Array<[FastifyInstance, string | undefined]> = [];
  try {
    await listenUnix(api, config.apiSocket, 0o600);
    servers.push([api, config.apiSocket]);
    if (config.apiListen) {
      const remote = buildApiServer(service, snapshots, facts, log, cluster, { jobs, backups }, { tokens, metrics, remote: { tokens, ui: UI_DIR, ...(tls ? { https: tls } : {}) } });
      servers.push([remote, undefined]);
      facts.apiListen = await listenTcp(remote, config.apiListen, { tls: Boolean(tls), log });
    }
    // The plugin socket last: once Docker can see it, everything behind it is ready.
    await listenUnix(plugin, config.pluginSocket, 0o660);
    servers.push([plugin, config.pluginSocket]);
  } catch (err) {
    for (const [s] of servers) await s.close();
    throw err;
  }

  scheduler.start();
  backups.startScheduler(config.dataDir);
  const sweep = setInterval(() => void service.purgeExpiredTrash(), trashSweepMs(config.trashRetentionMs));
  sweep.unref();

  log.info(
    { version: VERSION, node: config.node, dataDir: config.dataDir, pluginSocket: config.pluginSocket, apiSocket: config.apiSocket, ...(facts.apiListen ? { apiListen: facts.apiListen, apiTls: Boolean(tls) } : {}), volumes: service.counts().volumes, startupMs: Math.round(performance.now() - t0) },
    'ferryd ready',
  );

  let stopping: Promise<void> | undefined;
  return {
    service,
    log,
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(sweep);
        await scheduler.stop();
        await backups!.stopScheduler();
        await cluster.stop();
        // Plugin first so Docker stops sending work, then the API; in-flight requests finish.
        for (const [server, path] of [...servers].reverse()) {
          await server.close();
          if (path) await unlink(path).catch(() => undefined);
        }
        await tokens.flush();
        await metrics.flush();
        // running backups are abandoned: the repository format makes that safe (see docs/backup-format.md)
        await service.stop();
        log.info('ferryd stopped');
      })()),
  };
}
