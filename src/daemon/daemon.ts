/** Wires ferryd together and runs it: pools, catalog, services, the plugin socket, the API, the background passes. */
import { Periodic } from '../util/periodic.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { basename, join } from 'node:path';
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { DaemonConfig } from './config.js';
import { Catalog } from '../catalog/catalog.js';
import { VolumeService, type VolumeInfo } from '../volumes/service.js';
import { SnapshotService } from '../snapshots/service.js';
import { SnapshotScheduler } from '../snapshots/scheduler.js';
import { DirPool } from '../pools/dir.js';
import { ImagePool } from '../pools/image.js';
import { parseSize } from '../util/size.js';
import type { Pool } from '../pools/pool.js';
import { cacheAdvice } from '../pools/gluster-cache.js';
import { DockerClient } from '../docker/client.js';
import { DockerMemory } from '../docker/memory.js';
import { Registration } from '../docker/registration.js';
import { Revival } from '../docker/revival.js';
import { StaleMounts } from '../docker/stale-mounts.js';
import { Cluster } from '../cluster/cluster.js';
import { JobRegistry } from '../jobs/jobs.js';
import { BackupService } from '../backup/service.js';
import { buildPluginServer } from '../plugin/server.js';
import { buildApiServer, type DaemonFacts } from '../api/server.js';
import { TokenStore } from '../api/tokens.js';
import { Metrics } from '../api/metrics.js';
import { BackupHistory } from '../backup/history.js';
import { listenTcp, readTls } from '../api/tcp.js';
import { UI_DIR } from '../api/ui.js';
import { checkSocketPath, closeInherited, listenFd, listenUnix } from '../util/unix-listen.js';
import { inheritedSockets } from './socket-activation.js';
import { VERSION } from '../version.js';
import { StateWarnings } from '../util/state-warnings.js';
import { UsageTracker } from '../volumes/usage.js';
import { CapacityHistory } from '../pools/capacity-history.js';
import { lockDataDir } from '../util/data-dir-lock.js';
import { parseVolumeOptions } from './volume-options.js';
import { daemonChecks } from '../doctor/daemon-checks.js';
import { Quarantine } from '../util/quarantine.js';
import { makeDirs } from '../util/make-dirs.js';

/** Sweep the trash often enough that an entry outlives its retention by at most a quarter of it (10 min at most). */
const trashSweepMs = (retentionMs: number) => Math.min(10 * 60_000, Math.max(1000, Math.floor(retentionMs / 4)));

export interface RunningDaemon {
  service: VolumeService;
  log: Logger;
  stop(): Promise<void>;
  /** While stopping: the step it is at (said when a stop takes too long). */
  readonly stopStep: string | undefined;
}

/** Wire ferryd together: catalog and pools → volume service → plugin protocol and control API. */
export async function startDaemon(config: DaemonConfig, log: Logger = pino({ level: config.logLevel })): Promise<RunningDaemon> {
  const t0 = performance.now();
  // systemd socket activation: the sockets it holds while ferryd starts or restarts (contrib/ferryd.socket)
  const inherited = inheritedSockets();
  const startedAt = new Date().toISOString();
  // A socket another ferryd serves refuses this one before it makes a new data dir (the data dir's lock,
  // below, names the ferryd that holds an existing one: the better message for a second copy).
  if (!existsSync(config.dataDir)) {
    if (inherited.api === undefined) await checkSocketPath(config.apiSocket);
    if (inherited.plugin === undefined) await checkSocketPath(config.pluginSocket);
  }
  await makeDirs(config.dataDir, 0o700);
  // FIRST, before anything reads or writes the data dir (the catalog's start rotates the mount journal):
  // a second ferryd on this data dir is refused here, naming the first.
  const dirLock = await lockDataDir(config.dataDir, {
    pid: process.pid,
    node: config.node,
    host: hostname(),
    startedAt,
    version: VERSION,
    dataDir: config.dataDir,
    apiSocket: config.apiSocket,
    pluginSocket: config.pluginSocket,
  });
  const warnings = new StateWarnings();
  const quarantine = new Quarantine(warnings, log);
  const pools = new Map<string, Pool>([['local', new DirPool('local', config.dataDir)]]);
  for (const [name, p] of Object.entries(config.pools)) {
    if (p.kind === 'image') {
      // a shared image pool mounts each image on a directory of this host's, not on the share
      const shared = p.shared ? { shared: { attachDir: join(config.dataDir, 'image-mounts', name), ...(p.mount ? { mount: p.mount } : {}) } } : {};
      const pool = new ImagePool(name, p.path, { fs: p.fs ?? 'ext4', allocate: p.allocate ?? 'full', ...(p.defaultSize ? { defaultSize: parseSize(p.defaultSize, 'defaultSize') } : {}), ...shared });
      pool.onFallback = (volume, why) => log.warn({ pool: name, volume, err: why }, 'could not freeze and copy the image for a point-in-time snapshot; the snapshot reads the live filesystem');
      pool.onUnreserved = (image, why) => log.warn({ pool: name, image, err: why }, 'could not reserve again the blocks of an image that became holes (allocate: full); it is mounted, and writes into those blocks may fail while the host disk stays full');
      pools.set(name, pool);
      if (p.shared && !config.fenceCommand) {
        // killing a cut-off host's containers does not stop its kernel writing the image it still has mounted
        const message = `pool ${name} holds filesystem images on a share and no fenceCommand is set: a takeover from a host that is cut off but alive can corrupt an image (its kernel may still write it); set fenceCommand to power the old host off or cut it from the share (docs/image-pools.md)`;
        log.warn({ pool: name }, message);
        warnings.add(`image-fence:${name}`, { code: 'image_fence', message });
      }
    }
    else pools.set(name, new DirPool(name, p.path, { shared: p.shared, ...(p.mount ? { mount: p.mount } : {}) }));
  }
  const capacity = new CapacityHistory(
    join(config.dataDir, 'capacity.json'),
    () => [...pools.values()].map((p) => ({ name: p.name, capacity: async () => ((st) => (st.ok && !st.stalled ? st.capacity : undefined))(await p.status()) })),
    log,
    capacityTick(),
  );
  await capacity.load();
  const cluster = new Cluster([...pools.values()], {
    localCapacity: () =>
      Object.fromEntries(
        [...pools.values()].filter((p) => !p.shared).flatMap((p) => {
          const s = capacity.latest(p.name);
          return s ? [[p.name, { totalBytes: s.totalBytes, freeBytes: s.freeBytes, usedBytes: s.usedBytes }]] : [];
        }),
      ),
    node: config.node,
    version: VERSION,
    heartbeatMs: config.heartbeatIntervalMs,
    nodeTimeoutMs: config.nodeTimeoutMs,
    fenceMs: config.fenceDeadlineMs,
    ...(config.fenceCommand ? { fenceCommand: config.fenceCommand } : {}),
    log,
    dataDir: config.dataDir,
    warnings,
    quarantine,
  });
  // a second ferryd beating under this node name in a shared pool is refused before anything is written there
  await cluster.claimAll();
  // `dockerHost: none`: no Docker engine on this host (removals then check no containers, status says so)
  const docker = config.dockerHost === 'none' ? undefined : new DockerClient(config.dockerHost);
  const dockerDriver = basename(config.pluginSocket).replace(/\.sock$/, '');
  let snapshots: SnapshotService | undefined;
  let backups: BackupService | undefined;
  const service = new VolumeService({
    catalog: new Catalog(join(config.dataDir, 'catalog'), quarantine),
    parseOptions: parseVolumeOptions,
    quarantine,
    pools,
    defaultPool: config.defaultPool,
    node: config.node,
    cluster,
    roDir: join(config.dataDir, 'ro'),
    ...(config.mountRoot ? { mountRoot: config.mountRoot } : {}),
    trashRetentionMs: config.trashRetentionMs,
    docker,
    dockerHost: config.dockerHost,
    dockerDriver,
    managedPlugin: config.runsAs === 'managed-plugin',
    log,
    resolveClone: (from) => snapshots!.cloneSource(from),
    restoreBackup: (url, dir, report) => backups!.restoreInto(url, dir, report),
    // a mistyped target would only show when the first scheduled backup cannot start
    checkNewOptions: (o) => {
      const target = o['backup-target'];
      if (target === undefined) return;
      try {
        backups!.resolve(target);
      } catch (err) {
        throw new FerryError('invalid', `option backup-target: ${errorMessage(err)}`);
      }
    },
  });
  snapshots = new SnapshotService(service, log, docker);
  snapshots.quarantine = quarantine;
  snapshots.pendingRestores = join(config.dataDir, 'restores');
  await makeDirs(snapshots.pendingRestores, 0o700);
  const jobs = new JobRegistry(log, 200, { file: join(config.dataDir, 'jobs.json'), quarantine });
  await jobs.load();
  backups = new BackupService(service, snapshots, jobs, { targets: config.backupTargets, ...(config.backupPasswordFile ? { passwordFile: config.backupPasswordFile } : {}) }, config.node, log);
  backups.quarantine = quarantine;
  await backups.checkSecrets();
  await service.start();
  await snapshots.recover();
  // shared pools: beat, learn the cluster's volumes and re-publish what is mounted here, before Docker can ask
  cluster.onTick = () => service.refreshAttachments();
  await cluster.start();
  // restores this node began in a shared pool before a crash: their volumes are not mounted until finished
  void snapshots.recoverShared().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'could not finish the interrupted restores in shared pools'));
  await service.sweepStaging().catch((err) => log.warn({ err: errorMessage(err) }, 'could not sweep the staging directories of shared pools'));
  for (const p of pools.values()) {
    const st = await p.status();
    if (!st.ok) log.error({ pool: p.name, problem: st.problem }, 'pool is not usable; its volumes cannot be created or mounted until it is');
  }
  const scheduler = new SnapshotScheduler(service, snapshots, config.snapshotSchedules, log);

  // Volume Hub: API tokens, metrics fed by observer hooks, the API over TCP when asked for.
  const tokens = TokenStore.inDataDir(config.dataDir, log, quarantine);
  await tokens.load();
  const usage = new UsageTracker(service, (v) => snapshots!.list(v, { all: true }), join(config.dataDir, 'usage.json'), log, { exchange: cluster, ...usageHooks() });
  await usage.load();
  service.onDataChanged = (name) => usage.dataChanged(name);
  const history = new BackupHistory({ file: join(config.dataDir, 'last-backups.json'), onError: (what, err) => log.warn({ err }, what), quarantine });
  await history.load();
  backups.history = history;
  const metrics = new Metrics(service, { usage, backups: history, cluster, build: { version: VERSION, node: config.node } });
  snapshots.onSnapshot = (o) => {
    metrics.snapshot(o);
    if (o.ok && o.volume && o.at) usage.snapshotted(o.volume, o.at);
  };
  snapshots.onRemoved = (volume) => usage.snapshotsChanged(volume);
  jobs.onFinished = metrics.jobFinished;
  backups.onBackup = metrics.backup;
  const tls = config.apiTls ? await readTls(config.apiTls) : undefined;

  const memory = docker ? new DockerMemory(docker, service, dockerDriver, log) : undefined;
  const registration = docker ? new Registration(docker, service, dockerDriver, log) : undefined;
  const plugin = buildPluginServer({
    service,
    log,
    scope: () => (cluster.active ? 'global' : 'local'),
    observe: metrics.pluginCall,
    afterMount: (name: string) => usage.mounted(name),
    ...(memory && registration
      ? {
          afterCreate: (name: string) => {
            registration.stored(name);
            memory.learnSoon(name);
          },
          refuseCreate: (name: string) => (registration.claims(name) ? `volume ${name} is gone (removed on another node while ferryd registered it with Docker)` : undefined),
        }
      : {}),
  });
  const facts: DaemonFacts = {
    version: VERSION,
    node: config.node,
    pid: process.pid,
    startedAt,
    dataDir: config.dataDir,
    pluginSocket: config.pluginSocket,
    apiSocket: config.apiSocket,
    ...(Object.keys(inherited).length ? { socketActivated: Object.keys(inherited) } : {}),
    trashRetention: config.trashRetention,
    dockerHost: config.dockerHost,
    runsAs: config.runsAs,
    ...(config.mountRoot ? { mountRoot: config.mountRoot } : {}),
    backupTargets: Object.keys(config.backupTargets),
    warnings,
  };
  const doctor = () =>
    daemonChecks({ pid: process.pid, node: config.node, dataDir: config.dataDir, pluginSocket: config.pluginSocket, dockerHost: config.dockerHost, roDir: join(config.dataDir, 'ro'), lock: dirLock, pools: [...pools.values()], service, cluster, docker, warnings });
  const registerWithDocker = registration ? (name: string) => registration.now(name) : undefined;
  if (registerWithDocker) backups.onVolumeMade = registerWithDocker;
  const schedules = async (v: VolumeInfo) => [await scheduler.describe(v), await backups.schedule(v)].filter((s) => s !== undefined);
  const api = buildApiServer(service, snapshots, facts, log, cluster, { jobs, backups }, { tokens, metrics, usage, doctor, registerWithDocker, schedules, capacity: () => capacity.history() });
  // [server, socket path to remove at stop (ours, not systemd's), inherited from systemd]
  const servers: Array<[FastifyInstance, string | undefined, boolean]> = [];
  try {
    if (inherited.api !== undefined) await listenFd(api, inherited.api);
    else await listenUnix(api, config.apiSocket, 0o600);
    servers.push([api, inherited.api === undefined ? config.apiSocket : undefined, inherited.api !== undefined]);
    if (config.apiListen) {
      const remote = buildApiServer(service, snapshots, facts, log, cluster, { jobs, backups }, { tokens, metrics, usage, doctor, registerWithDocker, schedules, capacity: () => capacity.history(), remote: { tokens, ui: UI_DIR, ...(tls ? { https: tls } : {}) } });
      servers.push([remote, undefined, false]);
      facts.apiListen = await listenTcp(remote, config.apiListen, { tls: Boolean(tls), log });
    }
    // The plugin socket last: once Docker can see it, everything behind it is ready.
    if (inherited.plugin !== undefined) await listenFd(plugin, inherited.plugin);
    else await listenUnix(plugin, config.pluginSocket, 0o660);
    servers.push([plugin, inherited.plugin === undefined ? config.pluginSocket : undefined, inherited.plugin !== undefined]);
  } catch (err) {
    for (const [s, , fromSystemd] of servers) await (fromSystemd ? closeInherited(s) : s.close());
    throw err;
  }

  scheduler.start();
  memory?.start(); // after the plugin socket listens: Docker's volume list asks this plugin's List
  registration?.start();
  // after the plugin socket listens too: the containers it starts mount ferry volumes
  const revival = docker && config.restartContainers ? new Revival(docker, { driver: dockerDriver, log }) : undefined;
  revival?.start();
  // mounts whose Unmount never reached ferryd (it was down when the container stopped) are dropped
  // (FERRY_STALE_MOUNTS_MS=INTERVAL,GRACE: shorter times for tests)
  const staleEnv = process.env.FERRY_STALE_MOUNTS_MS;
  if (staleEnv !== undefined && !/^[1-9]\d*,[1-9]\d*$/.test(staleEnv)) log.warn({ FERRY_STALE_MOUNTS_MS: staleEnv }, 'FERRY_STALE_MOUNTS_MS is ignored: write INTERVAL,GRACE in milliseconds, e.g. 1000,3000 (a test hook; docs/testing.md)');
  const [staleEvery, staleGrace] = staleEnv && /^[1-9]\d*,[1-9]\d*$/.test(staleEnv) ? staleEnv.split(',').map(Number) : [];
  const staleMounts = docker ? new StaleMounts(docker, service, { log, ...(staleEvery ? { intervalMs: staleEvery } : {}), ...(staleGrace ? { graceMs: staleGrace } : {}) }) : undefined;
  staleMounts?.start();
  backups.startScheduler(config.dataDir);
  usage.start();
  capacity.start();
  // one sweep at a time: a purge of a large tree may take longer than the interval
  const sweep = new Periodic(trashSweepMs(config.trashRetentionMs), () => service.purgeExpiredTrash().then(
    () => undefined,
    (err: unknown) => log.error({ err: errorMessage(err) }, 'trash sweep failed'),
  ));
  sweep.start();

  log.info(
    { version: VERSION, runsAs: config.runsAs, node: config.node, dataDir: config.dataDir, pluginSocket: config.pluginSocket, apiSocket: config.apiSocket, ...(facts.apiListen ? { apiListen: facts.apiListen, apiTls: Boolean(tls) } : {}), volumes: service.counts().volumes, startupMs: Math.round(performance.now() - t0) },
    'ferryd ready',
  );
  // a GlusterFS share whose client answers for other nodes' changes from its caches (docs/shared-pools.md): say so
  for (const pool of pools.values()) {
    if (!pool.shared) continue;
    pool.clientCaches?.().then(
      (c) => {
        if (c.kind !== 'gluster' || c.on.length === 0) return;
        log.info({ pool: pool.name, caches: c.on }, cacheAdvice(pool.name, c).message);
      },
      () => undefined, // (a share that does not answer: its pool says so)
    );
  }

  let stopping: Promise<void> | undefined;
  let stopStep: string | undefined;
  const step = async (name: string, fn: () => Promise<unknown> | undefined) => {
    stopStep = name;
    await fn();
  };
  return {
    service,
    log,
    get stopStep() {
      return stopStep;
    },
    stop: () =>
      (stopping ??= (async () => {
        await step('the trash sweep', () => sweep.stop());
        await step('container revival', () => revival?.stop());
        await step('the stale-mount sweep', () => staleMounts?.stop());
        await step('the memory watch', () => memory?.stop());
        await step('Docker registration', () => registration?.stop());
        await step('the snapshot scheduler (a scheduled snapshot running)', () => scheduler.stop());
        await step('the backup scheduler (a scheduled backup running)', () => backups!.stopScheduler());
        await step('the usage pass', () => usage.stop());
        await step('the capacity history', () => capacity.stop());
        await step('the cluster (heartbeats, a share that does not answer?)', () => cluster.stop());
        // Plugin first so Docker stops sending work, then the API; in-flight requests finish.
        for (const [server, path, fromSystemd] of [...servers].reverse()) {
          await step(`requests in flight on ${path ?? 'the API'}`, () => (fromSystemd ? closeInherited(server) : server.close()));
          if (path) await unlink(path).catch(() => undefined);
        }
        await step('the token file', () => tokens.flush());
        await step('the backup history', () => history.flush());
        // running backups are abandoned: the repository format makes that safe (see docs/backup-format.md)
        await step('the catalog', () => service.stop());
        dirLock.release();
        log.info('ferryd stopped');
      })()),
  };
}

/**
 * FERRY_USAGE_INTERVAL_MS: how often the background usage pass runs (default 30 s); FERRY_USAGE_SHARED_SPREAD: in
 * how many passes each idle shared volume with snapshots is looked at once, and a shared pool listed once (default
 * 10). Test hooks, docs/testing.md.
 */
function usageHooks(): { tickMs?: number; sharedSpread?: number } {
  const num = (v: string | undefined) => (v && /^[1-9]\d*$/.test(v) ? Number(v) : undefined);
  const tickMs = num(process.env.FERRY_USAGE_INTERVAL_MS);
  const sharedSpread = num(process.env.FERRY_USAGE_SHARED_SPREAD);
  return { ...(tickMs ? { tickMs } : {}), ...(sharedSpread ? { sharedSpread } : {}) };
}

/** FERRY_CAPACITY_INTERVAL_MS: how often the pools' space is sampled for the history (a test hook; default 5 min). */
function capacityTick(): { intervalMs?: number } {
  const v = process.env.FERRY_CAPACITY_INTERVAL_MS;
  return v && /^[1-9]\d*$/.test(v) ? { intervalMs: Number(v) } : {};
}
