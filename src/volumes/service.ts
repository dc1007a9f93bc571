/** The volume service: the lifecycle of volumes (create, mount, unmount, remove), their records and reference counts, the local cache of shared catalogs; the trash, attachments and Docker's facts are its parts. */
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { Catalog, type DockerKnown, type TrashRecord, type VolumeRecord } from '../catalog/catalog.js';
import { checkVolumeName } from './names.js';
import type { AccessMode, VolumeOptions, VolumeOptionsParser } from './options.js';
import { dropReadOnlyView, ensureReadOnlyView, ensureView } from './ro-view.js';
import type { Pool, PoolStatus } from '../pools/pool.js';
import { isRunningState, type ContainerRef, type DockerClient } from '../docker/client.js';
import type { AttachmentStatus, Cluster } from '../cluster/cluster.js';
import type { SharedRecord } from '../cluster/shared-store.js';
import { KeyedLock } from '../util/keyed-lock.js';
import { forEachLimit } from '../util/parallel.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { shown } from '../util/shown.js';
import type { Quarantine } from '../util/quarantine.js';
import { salvage } from './salvage.js';
import { stagingId, stagingOwner } from './staging.js';
import { mapNoSpace, noSpaceError } from '../util/no-space.js';
import { pauseAt } from '../util/test-pause.js';
import { Trash, trashInfo, type TrashInfo } from './trash.js';
import { Attachments } from './attachments.js';
import { accessOf } from './access.js';
import { DockerUsers } from './docker-users.js';
import { DockerFacts, type DockerTold } from './docker-facts.js';

export type { TrashInfo, DockerTold };

/** Where a clone starts: the source snapshot's pool, and how to copy the snapshot into the new data directory. */
export interface CloneSource {
  pool: string;
  copyTo: (dest: string) => Promise<void>;
}

export interface VolumeInfo {
  name: string;
  pool: string;
  mountpoint: string;
  createdAt: string;
  node: string;
  options: VolumeOptions;
  labels: Record<string, string>;
  /** rwx, rwo or rox (see docs/shared-pools.md). */
  access: AccessMode;
  /** In a shared pool: every host of the cluster sees it. */
  shared: boolean;
  /** Number of Docker mounts on this node (reference count). */
  mounts: number;
  mountIds: string[];
  /** What Docker's store knew of the volume, as ferryd remembers it (driver, labels, Create's raw options). */
  docker?: DockerKnown;
}

export interface RestoreReport {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/** The result of a removal through the CLI or API. */
export interface RemoveResult {
  trash: TrashInfo | undefined;
  /** What `--force` overrode (each a sentence), empty without --force or when nothing was in the way. */
  overrode: string[];
}

export interface RemoveOptions {
  /** Delete the data at once instead of moving it to the trash. */
  purge?: boolean;
  /** Drop recorded mounts (stale after a Docker crash) and override the reference checks instead of refusing. */
  force?: boolean;
  /**
   * The CLI/API removal: refuse while containers (any state) on this host reference the volume, or, in a
   * shared pool, containers on another live node; refuse when Docker cannot be asked. Docker's own
   * VolumeDriver.Remove does not set it: Docker has checked already, and waits for the answer.
   */
  checkReferences?: boolean;
}

export interface ServiceDeps {
  catalog: Catalog;
  /** Checks `-o` options: the core's and those of the features above (daemon/volume-options.ts). */
  parseOptions: VolumeOptionsParser;
  pools: Map<string, Pool>;
  defaultPool: string;
  node: string;
  trashRetentionMs: number;
  /** The Engine API; absent with `dockerHost: none` (no Docker engine on this host). */
  docker?: DockerClient;
  /** The Engine API's address (for messages), or `none`. */
  dockerHost?: string;
  /** The driver name Docker knows this plugin by (its socket's name: ferry.sock → ferry). */
  dockerDriver?: string;
  /** ferryd runs as a managed Docker plugin (Docker names its driver `ferry:latest`, `ferry:TAG`). */
  managedPlugin?: boolean;
  log: Logger;
  now?: () => number;
  /** Find the snapshot a clone (`-o from=VOL@SNAP`) starts from. */
  resolveClone?: (from: string) => Promise<CloneSource>;
  /** Fill a new volume's empty data directory from a backup (`-o backup=URL`). */
  restoreBackup?: (url: string, dir: string, report?: (p: RestoreReport) => void) => Promise<void>;
  /** Shared pools: the catalog, attachments and rwo locks that every host sees. */
  cluster?: Cluster;
  /** Where read-only views of rox volumes are mounted (DATA_DIR/ro). */
  roDir?: string;
  /**
   * A managed plugin's propagatedMount: every mounted volume is given to Docker as a bind mount
   * MOUNT_ROOT/NAME of its data (read-only for rox), made at the first Mount and dropped at the last Unmount.
   * Docker maps a Mountpoint only under the plugin's propagatedMount to the host; any other path would be
   * the plugin's rootfs.
   */
  mountRoot?: string;
  /** Unreadable catalog files are moved aside and reported here. */
  quarantine?: Quarantine;
}

/**
 * The volume service: names, catalog records, reference counts and the trash. The Docker protocol and
 * the REST API both call it; it calls the pools. Work on one volume is serialised by a per-volume lock.
 */
export class VolumeService {
  private readonly lock = new KeyedLock();
  private readonly catalog: Catalog;
  private readonly log: Logger;
  private readonly now: () => number;

  private readonly trash: Trash;
  private readonly dockerFacts: DockerFacts;
  private readonly attachments: Attachments;
  private readonly dockerUsers: DockerUsers;

  constructor(private readonly deps: ServiceDeps) {
    this.catalog = deps.catalog;
    this.log = deps.log;
    this.now = deps.now ?? Date.now;
    const self = {
      catalog: deps.catalog,
      log: deps.log,
      now: this.now,
      node: deps.node,
      lock: this.lock,
      pool: (name: string) => this.pool(name),
      isShared: (pool: string) => this.isShared(pool),
    };
    this.trash = new Trash({
      ...self,
      exists: async (name) => (await this.sync(name)) !== undefined,
      publish: async (rec) => (await (await this.deps.cluster!.store(rec.pool)).publish(sharedPart(rec))),
    });
    this.dockerUsers = new DockerUsers({ log: deps.log, now: this.now, ...(deps.docker ? { docker: deps.docker } : {}) });
    this.attachments = new Attachments({
      ...self,
      ...(deps.cluster ? { cluster: deps.cluster } : {}),
      ...(deps.docker ? { docker: deps.docker } : {}),
      syncAll: () => this.syncAll(),
      containersUsing: (name) => this.dockerUsers.using(name),
    });
    this.dockerFacts = new DockerFacts({
      ...self,
      ...(deps.docker ? { docker: deps.docker } : {}),
      ...(deps.dockerHost ? { dockerHost: deps.dockerHost } : {}),
      ...(deps.dockerDriver ? { dockerDriver: deps.dockerDriver } : {}),
      managedPlugin: deps.managedPlugin ?? false,
    });
  }

  /** Check volume options as create would (for callers that check before they start a job). */
  parseOptions(opts: unknown): VolumeOptions {
    return this.deps.parseOptions(opts);
  }

  get node(): string {
    return this.deps.node;
  }

  private pool(name: string): Pool {
    const pool = this.deps.pools.get(name);
    if (!pool) {
      throw new FerryError('invalid', `no pool named ${JSON.stringify(name)}; configured pools: ${[...this.deps.pools.keys()].join(', ')}`);
    }
    return pool;
  }

  private info(rec: VolumeRecord): VolumeInfo {
    return {
      name: rec.name,
      pool: rec.pool,
      mountpoint: this.mountpointOf(rec),
      createdAt: rec.createdAt,
      node: rec.node,
      options: rec.options,
      labels: rec.labels,
      access: accessOf(rec),
      shared: this.isShared(rec.pool),
      mounts: Object.keys(rec.mounts).length,
      mountIds: Object.keys(rec.mounts),
      ...(rec.docker ? { docker: rec.docker } : {}),
    };
  }

  private isShared(pool: string): boolean {
    return this.deps.cluster?.isShared(pool) ?? false;
  }

  /** Where Docker finds the data: the pool's directory, or for rox volumes the node's read-only view of it. */
  private mountpointOf(rec: VolumeRecord): string {
    if (this.deps.mountRoot) return join(this.deps.mountRoot, rec.name);
    if (accessOf(rec) === 'rox' && this.deps.roDir) return join(this.deps.roDir, rec.name);
    return this.pool(rec.pool).mountpoint(rec.name);
  }

  private record(name: string): VolumeRecord {
    const rec = this.catalog.volumes.get(checkVolumeName(name));
    if (!rec) {
      const inTrash = this.catalog.trash.values().some((t) => t.volume.name === name);
      throw new FerryError(
        'not_found',
        inTrash
          ? `no such volume: ${name} (it is in the trash; \`ferry volume undelete ${name}\` brings it back)`
          : `no such volume: ${name}`,
      );
    }
    return rec;
  }

  // ---- start-up -----------------------------------------------------------------------------------

  /** Load the catalog and finish or roll back whatever a crash interrupted. */
  async start(): Promise<void> {
    for (const pool of this.deps.pools.values()) await pool.init();
    const bad = await this.catalog.load();
    await salvage(bad, { ...this.deps, now: this.now, log: this.log });
    await this.recover();
    await this.purgeExpiredTrash();
  }

  /**
   * A removal writes the trash record, moves the data, then deletes the volume record; an undelete writes
   * the volume record, moves the data back, then deletes the trash record. After a crash, where the data
   * is decides which record stays. Directories without any record are adopted, never deleted.
   */
  private async recover(): Promise<void> {
    for (const t of this.catalog.trash.values()) {
      const pool = this.deps.pools.get(t.volume.pool);
      if (!pool) continue;
      // The live record of the same volume, possibly under a new name after `undelete --as`.
      const twin = this.catalog.volumes
        .values()
        .find((v) => v.pool === t.volume.pool && v.createdAt === t.volume.createdAt);
      if (await pool.hasTrash(t.id)) {
        if (twin) {
          this.log.warn({ volume: twin.name, trash: t.id }, 'recovery: the data is in the trash, dropping the live record');
          await this.catalog.volumes.save(twin.name, undefined);
        }
      } else if (!twin) {
        this.log.warn({ trash: t.id }, 'recovery: trash data is gone (purge was interrupted), dropping the trash record');
        await this.catalog.trash.save(t.id, undefined);
      } else if (await pool.hasLive(twin.name)) {
        this.log.warn({ volume: twin.name, trash: t.id }, 'recovery: the data is live, dropping the trash record');
        await this.catalog.trash.save(t.id, undefined);
      } else {
        this.log.error({ volume: twin.name, trash: t.id }, 'recovery: volume data found neither live nor in the trash');
      }
    }
    for (const [poolName, pool] of this.deps.pools) {
      // In a shared pool a directory without a record may be a create in progress on another host.
      if (this.isShared(poolName)) continue;
      for (const name of await pool.listLive()) {
        if (this.catalog.volumes.get(name)) continue;
        this.log.warn({ volume: name, pool: poolName }, 'recovery: adopting a volume directory that had no catalog record');
        await this.catalog.volumes.save(name, {
          name,
          pool: poolName,
          createdAt: new Date(this.now()).toISOString(),
          node: this.deps.node,
          options: {},
          labels: { 'ferry.recovered': 'true' },
          mounts: {},
        });
      }
    }
  }

  /** Flush and close the catalog's journal (after the servers stopped taking calls). */
  async stop(): Promise<void> {
    await this.catalog.close();
  }

  // ---- volumes ------------------------------------------------------------------------------------

  async create(
    nameIn: unknown,
    optsIn: unknown,
    labels: Record<string, string> = {},
    { ifMissing = false, progress, dockerOptions }: { ifMissing?: boolean; progress?: (p: RestoreReport) => void; /** Create's Opts as Docker sent them. */ dockerOptions?: unknown } = {},
  ): Promise<VolumeInfo> {
    const name = checkVolumeName(nameIn);
    const opts = this.deps.parseOptions(optsIn);
    if (opts.backup && !this.deps.restoreBackup) throw new FerryError('invalid', 'restores from backups are not available on this node');
    const fill = opts.backup ? (dir: string) => this.deps.restoreBackup!(opts.backup!, dir, progress) : undefined;
    let source: CloneSource | undefined;
    if (opts.from) {
      if (!this.deps.resolveClone) throw new FerryError('invalid', 'clones are not available on this node');
      if (opts.from.split('@')[0] === name) throw new FerryError('invalid', `volume ${name} cannot be cloned from itself`);
    }
    const poolName = opts.pool ?? this.deps.defaultPool;
    this.pool(poolName); // an unknown pool is refused before the lock
    const docker = rawOptions(dockerOptions);
    return this.lock.run(name, async () => {
      const existing = await this.sync(name);
      if (existing) {
        const same = JSON.stringify({ ...existing.options, pool: existing.pool }) === JSON.stringify({ ...opts, pool: poolName });
        if (ifMissing && same) return this.info(existing);
        throw new FerryError('exists', `volume ${name} already exists${ifMissing ? ' with other options' : ''}; remove it first or pick another name`);
      }
      if (opts.from) {
        source = await this.deps.resolveClone!(opts.from);
        if (opts.pool === undefined && source.pool !== poolName) {
          if (this.isShared(source.pool)) return this.createShared(name, { ...opts, pool: source.pool }, labels, ifMissing, source, undefined, docker);
          return this.createLocked(name, { ...opts, pool: source.pool }, labels, source, undefined, docker);
        }
      }
      if (this.isShared(poolName)) return this.createShared(name, opts, labels, ifMissing, source, fill, docker);
      return this.createLocked(name, opts, labels, source, fill, docker);
    });
  }

  /**
   * Create in a shared pool, where another host may create the same name at the same moment. The volume is
   * made (and filled, for a clone or a restore) in a staging directory of this ferryd's own, out of sight;
   * the rename into place decides who creates, and the record published with link(2) makes it visible. So
   * a create killed mid-way leaves a staging directory (swept by sweepStaging), never a volume directory
   * without a record that would block the name on every host. The loser waits for the winner's record:
   * same options and `ifMissing` (Docker's Create) is a success, anything else an `exists` error.
   */
  private async createShared(name: string, opts: VolumeOptions, labels: Record<string, string>, ifMissing: boolean, source?: CloneSource, fill?: (dir: string) => Promise<void>, docker?: DockerKnown): Promise<VolumeInfo> {
    const poolName = opts.pool ?? this.deps.defaultPool;
    const store = await this.deps.cluster!.store(poolName);
    const pool = this.pool(poolName);
    try {
      if (await pool.hasLive(name)) throw new FerryError('exists', `pool ${poolName} already holds a directory for volume ${name}`);
      const what = `${source ? 'cloning' : fill ? 'restoring' : 'creating'} volume ${name}`;
      const stageId = stagingId(this.deps.cluster!.instance);
      await mapNoSpace(poolName, pool.root, what, async () => {
        const data = await pool.createStaged(stageId, opts, source?.copyTo);
        try {
          // a `exists` from the restore must not look like a name clash
          if (fill) await fill(data).catch((err) => Promise.reject(err instanceof FerryError && err.code === 'exists' ? new FerryError('internal', err.message) : err));
          await pool.commitStaged(stageId, name);
        } catch (err) {
          await pool.discardStaged(stageId).catch((e) => this.log.error({ volume: name, pool: poolName, stage: stageId, err: errorMessage(e) }, 'could not remove the staging directory of a failed create'));
          throw err;
        }
      });
    } catch (err) {
      if (!(err instanceof FerryError && err.code === 'exists')) throw err;
      let theirs: SharedRecord | undefined;
      for (const deadline = this.now() + 15_000; !(theirs = await store.read(name)) && this.now() < deadline; ) await sleep(100);
      if (!theirs) {
        throw new FerryError('exists', `pool ${poolName} holds a directory for ${name} without a record: a create on another node is in progress or crashed; retry, or look at ${pool.volumeRoot(name)}`);
      }
      const rec: VolumeRecord = { ...theirs, mounts: {} };
      this.catalog.volumes.put(name, rec);
      const same = JSON.stringify({ ...theirs.options, pool: theirs.pool }) === JSON.stringify({ ...opts, pool: poolName });
      if (ifMissing && same) return this.info(rec);
      throw new FerryError('exists', `volume ${name} already exists (created on node ${theirs.node}${same ? '' : ' with other options'}); remove it first or pick another name`);
    }
    const rec: VolumeRecord = { name, pool: poolName, createdAt: new Date(this.now()).toISOString(), node: this.deps.node, options: opts, labels, mounts: {}, ...(docker ? { docker } : {}) };
    let published: boolean;
    try {
      published = await store.publish(sharedPart(rec));
    } catch (err) {
      await this.discardNew(poolName, name); // no directory without a record for other hosts to wait on
      throw err;
    }
    if (!published) {
      // a record whose directory had vanished: leave it for the operator, take back what was just made
      await this.discardNew(poolName, name);
      throw new FerryError('exists', `pool ${poolName} already has a record for ${name}; remove it first (\`ferry volume rm ${name}\`)`);
    }
    this.catalog.volumes.put(name, rec);
    this.log.info({ volume: name, pool: poolName, options: opts }, 'volume created in a shared pool');
    return this.info(rec);
  }

  /**
   * Remove the staging directories of shared creates whose ferryd is gone (killed mid-way, on any node): those
   * whose instance is neither this ferryd nor one with a live heartbeat. Nothing in them was ever a volume
   * (its Create was never answered), so they are deleted, with a warning each. Called once the cluster has
   * beaten, at start-up.
   */
  async sweepStaging(): Promise<void> {
    const cluster = this.deps.cluster;
    if (!cluster?.active) return;
    const live = new Set((await cluster.nodes()).filter((n) => n.alive && n.instance).map((n) => n.instance!));
    live.add(cluster.instance);
    for (const poolName of cluster.sharedPools()) {
      const pool = this.pool(poolName);
      for (const id of await pool.listStaged()) {
        if (live.has(stagingOwner(id))) continue;
        this.log.warn({ pool: poolName, stage: id }, 'removing what a create killed mid-way left in the staging directory (its ferryd is gone; the create was never answered)');
        await pool.discardStaged(id).catch((err) => this.log.error({ pool: poolName, stage: id, err: errorMessage(err) }, 'could not remove a staging directory'));
      }
    }
  }

  // ---- shared pools: the local cache follows the shared catalog -------------------------------------

  /**
   * Bring this node's cached record of `name` in line with the shared pools (callers hold its lock).
   * A record removed or re-created elsewhere is dropped or replaced, unless this node still has it
   * mounted. A shared pool that cannot be read changes nothing: never forget a volume because a
   * backend is slow or down (Docker would forget it too).
   */
  private async sync(name: string): Promise<VolumeRecord | undefined> {
    const cluster = this.deps.cluster;
    const local = this.catalog.volumes.get(name);
    if (!cluster?.active || (local && !this.isShared(local.pool))) return local;
    for (const pool of local ? [local.pool] : cluster.sharedPools()) {
      let shared: SharedRecord | undefined;
      try {
        shared = await (await cluster.store(pool)).read(name);
      } catch {
        continue;
      }
      if (local && Object.keys(local.mounts).length > 0 && shared?.createdAt !== local.createdAt) {
        this.log.warn({ volume: name, pool }, 'volume was removed or re-created on another node while mounted here; keeping it until unmounted');
        return local;
      }
      if (!shared) {
        if (!local) continue; // not in this shared pool: maybe in the next one
        // gone from the share, or the share went away between the check and the read: look again
        if (local && (await this.pool(pool).checkAvailable().then(() => true, () => false))) await this.catalog.volumes.forget(name);
        return this.catalog.volumes.has(name) ? local : undefined;
      }
      if (local?.createdAt === shared.createdAt) return local;
      if (local) await this.catalog.volumes.forget(name);
      const rec: VolumeRecord = { ...shared, mounts: {} };
      this.catalog.volumes.put(name, rec);
      return rec;
    }
    return local;
  }

  private syncing: Promise<void> | undefined;
  private syncNext: Promise<void> | undefined;

  /**
   * Learn every volume of the shared pools and drop those removed elsewhere (for List and the heartbeat).
   * A caller always gets a pass that read the shared catalogs after it called: while one pass runs, later
   * callers share the single pass that follows it.
   */
  syncAll(): Promise<void> {
    if (!this.deps.cluster?.active) return Promise.resolve();
    if (!this.syncing) return (this.syncing = this.syncPass().finally(() => (this.syncing = undefined)));
    return (this.syncNext ??= this.syncing
      .catch(() => undefined)
      .then(() => {
        this.syncNext = undefined;
        return this.syncAll();
      }));
  }

  private async syncPass(): Promise<void> {
    const cluster = this.deps.cluster!;
    for (const pool of cluster.sharedPools()) {
      let names: Set<string>;
      try {
        names = new Set(await (await cluster.store(pool)).names());
      } catch {
        continue;
      }
      const added = [...names].filter((n) => !this.catalog.volumes.has(n));
      const gone = this.catalog.volumes.values().filter((r) => r.pool === pool && !names.has(r.name)).map((r) => r.name);
      await forEachLimit([...added, ...gone], 32, (n) => this.lock.run(n, async () => void (await this.sync(n))));
    }
  }

  /** The volume, looking it up in the shared pools when this node does not know it yet. */
  async lookup(nameIn: unknown): Promise<VolumeInfo> {
    const name = checkVolumeName(nameIn);
    if (!this.catalog.volumes.has(name) && this.deps.cluster?.active) await this.lock.run(name, () => this.sync(name));
    return this.get(name);
  }

  /** Refuse when a live node other than this one has the volume mounted. */
  async refuseIfUsedElsewhere(rec: VolumeRecord, what: string): Promise<void> {
    if (!this.isShared(rec.pool)) return;
    const elsewhere = await this.deps.cluster!.usedElsewhere(rec.pool, rec);
    if (elsewhere.length === 0) return;
    const who = elsewhere.map((a) => `node ${a.node} (${a.containers.length ? a.containers.join(', ') : `${a.mountIds.length} mount(s)`})`).join(', ');
    throw new FerryError('in_use', `volume ${rec.name} is in use on ${who}; stop those containers before you ${what}`, { attachments: elsewhere });
  }

  /**
   * Run a change that needs the volume unmounted everywhere (restore, reset; callers hold its lock): on a
   * shared pool, mark the change in progress before the last look at the other nodes' attachments, so a
   * Mount that starts meanwhile on another node sees the mark and backs out (the handshake in mount()).
   */
  async changeExclusively<T>(rec: VolumeRecord, what: string, fn: () => Promise<T>): Promise<T> {
    if (!this.isShared(rec.pool)) return fn();
    const end = await this.deps.cluster!.beginChange(rec.pool, rec, what);
    try {
      await this.refuseIfUsedElsewhere(rec, what);
      return await fn();
    } finally {
      await end();
    }
  }

  /**
   * The other half of the handshake with a removal or restore on another node, for a Mount that has just
   * published this node's attachment: the record must still be the one mounted, and no other live node may
   * have marked a change of it in progress (it may have looked at the attachments before ours landed).
   * Undefined when the Mount may go on; a share that cannot be read now is no evidence of a change.
   */
  private async changedUnderMount(rec: VolumeRecord): Promise<FerryError | undefined> {
    const cluster = this.deps.cluster!;
    let cur: SharedRecord | undefined;
    let mark: Awaited<ReturnType<Cluster['changeElsewhere']>>;
    try {
      cur = await (await cluster.store(rec.pool)).read(rec.name);
      mark = await cluster.changeElsewhere(rec.pool, rec);
    } catch (err) {
      this.log.warn({ volume: rec.name, err: errorMessage(err) }, 'could not look for a removal on another node after publishing the attachment');
      return undefined;
    }
    if (!cur || cur.createdAt !== rec.createdAt) {
      return new FerryError('not_found', `volume ${rec.name} was removed on another node while this Mount started; nothing was mounted here`);
    }
    if (mark) {
      return new FerryError('in_use', `volume ${rec.name} is busy: node ${mark.node} is about to ${mark.what} (since ${mark.since}); nothing was mounted here: try again when that is done`, { node: mark.node });
    }
    return undefined;
  }

  // ---- attachments (attachments.ts) and Docker's users of a volume (docker-users.ts) ------------------

  /** Attachments of every volume of the shared pools (for listings), by volume name. */
  attachmentsByVolume(): Promise<Map<string, AttachmentStatus[]>> {
    return this.attachments.byVolume();
  }

  /** Which volumes this node runs schedules for (see Attachments.scheduledHere). */
  scheduledHere(): Promise<(v: VolumeInfo) => boolean> {
    return this.attachments.scheduledHere();
  }

  /** Heartbeat work: learn the shared catalog, re-publish this node's attachments and references. */
  refreshAttachments(): Promise<void> {
    return this.attachments.refresh();
  }

  /** The containers of this host that hold each volume; undefined when Docker does not answer. */
  containersHolding(): Promise<Map<string, ContainerRef[]> | undefined> {
    return this.dockerUsers.holding();
  }

  containersUsing(name: string): Promise<ContainerRef[] | undefined> {
    return this.dockerUsers.using(name);
  }

  /** Delete a volume directory this call has just made (nothing else refers to it yet). */
  private async discardNew(poolName: string, name: string): Promise<void> {
    const pool = this.pool(poolName);
    const trashId = `${name}@${this.now()}`;
    await pool
      .moveToTrash(name, trashId)
      .then(() => pool.purgeTrash(trashId))
      .catch((e) => this.log.error({ volume: name, pool: poolName, err: errorMessage(e) }, 'could not remove a volume directory left by a failed create'));
  }

  /** Fill a just-made volume (a restore); if that fails, the volume goes away again: nothing half-done. */
  private async fillOrUndo(poolName: string, name: string, fill: (dir: string) => Promise<void>): Promise<void> {
    const pool = this.pool(poolName);
    try {
      await fill(pool.mountpoint(name));
    } catch (err) {
      await this.discardNew(poolName, name);
      // a `exists` from the restore must not look like a name clash to createShared
      if (err instanceof FerryError && err.code === 'exists') throw new FerryError('internal', err.message);
      throw err;
    }
  }

  private async createLocked(name: string, opts: VolumeOptions, labels: Record<string, string>, source?: CloneSource, fill?: (dir: string) => Promise<void>, docker?: DockerKnown): Promise<VolumeInfo> {
    const poolName = opts.pool ?? this.deps.defaultPool;
    const pool = this.pool(poolName);
    const what = `${source ? 'cloning' : fill ? 'restoring' : 'creating'} volume ${name}`;
    await mapNoSpace(poolName, pool.root, what, () => pool.create(name, opts, source?.copyTo));
    if (fill) await mapNoSpace(poolName, pool.root, what, () => this.fillOrUndo(poolName, name, fill));
    const rec: VolumeRecord = {
      name,
      pool: poolName,
      createdAt: new Date(this.now()).toISOString(),
      node: this.deps.node,
      options: opts,
      labels,
      mounts: {},
      ...(docker ? { docker } : {}),
    };
    try {
      await this.catalog.volumes.save(name, rec);
    } catch (err) {
      await this.discardNew(poolName, name); // no directory without a record, adopted at the next start
      throw err;
    }
    this.log.info({ volume: name, pool: poolName, options: opts }, 'volume created');
    return this.info(rec);
  }

  /** Run `fn` holding the volume's lock (snapshots, restores and history switches use it). */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(checkVolumeName(name), fn);
  }

  /** The catalog record (throws not_found). */
  recordOf(name: string): VolumeRecord {
    return this.record(name);
  }

  poolOf(rec: VolumeRecord): Pool {
    return this.pool(rec.pool);
  }

  get(name: string): VolumeInfo {
    return this.info(this.record(name));
  }

  list(): VolumeInfo[] {
    return this.catalog.volumes
      .values()
      .map((r) => this.info(r))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  path(name: string): string {
    const rec = this.record(name);
    if (this.deps.mountRoot) return this.mountpointOf(rec);
    return this.pool(rec.pool).mountpoint(rec.name);
  }

  async usage(name: string): Promise<number> {
    const rec = this.record(name);
    return this.pool(rec.pool).usage(rec.name);
  }

  /** Docker mounts a volume for a container; `id` is Docker's mount ID. Idempotent per ID. */
  async mount(nameIn: string, id: unknown): Promise<string> {
    const name = checkVolumeName(nameIn);
    const mountId = checkMountId(id);
    const { durable, mountpoint } = await this.lock.run(name, async () => {
      const rec = (await this.sync(name)) ?? this.record(name);
      const pool = this.pool(rec.pool);
      await pool.checkMountable(name);
      const shared = this.isShared(rec.pool);
      const first = Object.keys(rec.mounts).length === 0;
      if (shared && accessOf(rec) === 'rwo' && !(await this.deps.cluster!.stillHeld(rec.pool, name))) await this.deps.cluster!.acquire(rec.pool, rec);
      try {
        if (this.deps.mountRoot) await ensureView(pool.mountpoint(name), this.mountpointOf(rec), accessOf(rec) === 'rox');
        else if (accessOf(rec) === 'rox' && this.deps.roDir) await ensureReadOnlyView(pool.mountpoint(name), this.mountpointOf(rec));
        // the journal's entries of a volume count only if its record is on this node's disk too
        if (shared && !this.catalog.volumes.isOnDisk(name)) await this.catalog.volumes.save(name, rec);
      } catch (err) {
        if (first) await this.letGo(rec);
        throw err;
      }
      const durable = rec.mounts[mountId] ? Promise.resolve() : this.catalog.changeMount(rec, mountId, '+', new Date(this.now()).toISOString());
      if (shared) {
        await pauseAt('mount-before-attach');
        await this.attachments.publish(rec).catch((err) => this.log.warn({ volume: name, err: errorMessage(err) }, 'could not publish attachment'));
        // first mount here: a removal or restore on another node may have looked at the attachments before ours landed
        await pauseAt('mount-before-check');
        const changed = first ? await this.changedUnderMount(rec) : undefined;
        if (changed) {
          const undone = this.catalog.changeMount(rec, mountId, '-', new Date(this.now()).toISOString());
          await this.letGo(rec);
          await Promise.all([durable, undone]).catch((err) => this.log.warn({ volume: name, err: errorMessage(err) }, 'could not write the mount journal'));
          this.log.warn({ volume: name, id: mountId, err: changed.message }, 'Mount backed out');
          throw changed;
        }
      }
      return { durable, mountpoint: this.mountpointOf(rec) };
    });
    // Wait outside the lock: concurrent Mounts of this volume share one journal flush.
    await this.persisted(name, durable);
    this.log.debug({ volume: name, id: mountId }, 'mounted');
    return mountpoint;
  }

  /** The volumes with mounts on this node, each mount's Docker ID and when it was made (stale-mounts.ts). */
  mountsHeld(): Array<{ name: string; mounts: Array<{ id: string; since: string }> }> {
    const out: Array<{ name: string; mounts: Array<{ id: string; since: string }> }> = [];
    for (const rec of this.catalog.volumes.values()) {
      const mounts = Object.entries(rec.mounts).map(([id, m]) => ({ id, since: m.since }));
      if (mounts.length > 0) out.push({ name: rec.name, mounts });
    }
    return out;
  }

  /** Docker unmounts; an unknown ID (after a failed Mount, or a duplicate) is accepted. */
  async unmount(nameIn: string, id: unknown): Promise<void> {
    const name = checkVolumeName(nameIn);
    const mountId = checkMountId(id);
    // (a promise inside an object: returned bare, the lock would wait for the disk flush)
    const { durable } = await this.lock.run(name, async () => {
      const rec = this.catalog.volumes.get(name);
      if (!rec || !rec.mounts[mountId]) {
        this.log.debug({ volume: name, id: mountId }, 'unmount of an unknown mount ID accepted');
        return { durable: Promise.resolve() };
      }
      const durable = this.catalog.changeMount(rec, mountId, '-', new Date(this.now()).toISOString());
      if (Object.keys(rec.mounts).length === 0) await this.letGo(rec);
      else await this.attachments.publish(rec).catch((err) => this.log.warn({ volume: name, err: errorMessage(err) }, 'could not publish attachment'));
      return { durable };
    });
    await this.persisted(name, durable);
  }

  /** The last mount on this node is gone: drop the read-only view, the attachment and the rwo lock. */
  private async letGo(rec: VolumeRecord): Promise<void> {
    const steps: Array<[string, () => Promise<void>]> = [];
    if (this.deps.mountRoot) steps.push(['drop the bind mount for Docker', () => dropReadOnlyView(this.mountpointOf(rec))]);
    else if (accessOf(rec) === 'rox' && this.deps.roDir) steps.push(['drop read-only view', () => dropReadOnlyView(this.mountpointOf(rec))]);
    if (this.isShared(rec.pool)) {
      steps.push(['withdraw attachment', () => this.attachments.publish(rec)]);
      if (accessOf(rec) === 'rwo') steps.push(['release rwo lock', () => this.deps.cluster!.release(rec.pool, rec.name)]);
    }
    for (const [what, step] of steps) await step().catch((err) => this.log.warn({ volume: rec.name, err: errorMessage(err) }, `could not ${what}`));
  }

  private async persisted(name: string, durable: Promise<void>): Promise<void> {
    try {
      await durable;
    } catch (err) {
      this.log.error({ volume: name, err: errorMessage(err) }, 'could not write the mount journal');
      const full = await noSpaceError(err, `the data dir ${dirname(this.catalog.dir)}`, this.catalog.dir, `recording the mount of ${name}`);
      if (full !== err) throw full;
      throw new FerryError('unavailable', `could not record the mount of ${name} on disk: ${errorMessage(err)}; check the disk of the data dir`);
    }
  }

  /** Docker's VolumeDriver.Remove (and internal callers): Docker has checked for containers already. */
  async remove(nameIn: unknown, opts: RemoveOptions = {}): Promise<TrashInfo | undefined> {
    return (await this.removeVolume(nameIn, opts)).trash;
  }

  /** Remove a volume; with `checkReferences` (the CLI and API), as carefully as `docker volume rm`. */
  async removeVolume(nameIn: unknown, { purge = false, force = false, checkReferences = false }: RemoveOptions = {}): Promise<RemoveResult> {
    const name = checkVolumeName(nameIn);
    // Only a mounted volume can have running users: ask Docker for their names only then (the round trip
    // into dockerd, which is itself waiting for this Remove, was a good part of `docker volume rm`).
    const known = this.catalog.volumes.get(name);
    const early = !checkReferences && known && Object.keys(known.mounts).length > 0 ? await this.containersUsing(name) : undefined;
    return this.lock.run(name, async () => {
      const rec = (await this.sync(name)) ?? this.record(name);
      // shared: mark the removal before the last look at the attachments (the handshake with mount())
      const endChange = this.isShared(rec.pool) ? await this.deps.cluster!.beginChange(rec.pool, rec, 'remove it') : undefined;
      try {
        return await this.removeLocked(name, rec, { purge, force, checkReferences, early });
      } finally {
        await endChange?.();
      }
    });
  }

  private async removeLocked(name: string, rec: VolumeRecord, { purge, force, checkReferences, early }: Required<RemoveOptions> & { early: ContainerRef[] | undefined }): Promise<RemoveResult> {
    await this.refuseIfUsedElsewhere(rec, 'remove it');
    await pauseAt('remove-before-move');
    // the CLI/API path asks inside the lock, just before the removal: the narrowest window
    const asked = checkReferences ? await this.askDocker(name) : undefined;
    const users = checkReferences ? asked!.containers : early;
    const mountIds = Object.keys(rec.mounts);
    const running = (users ?? []).filter((c) => isRunningState(c.state));
    if ((mountIds.length > 0 && !force) || running.length > 0) {
      // every container that holds it; the others (a Swarm's `created` tasks that never ran) apart, at most 5
      const named = (cs: ContainerRef[], most = Infinity) => cs.slice(0, most).map((c) => `${c.name} (${c.state})`).join(', ') + (cs.length > most ? `, and ${cs.length - most} more` : '');
      const idle = (users ?? []).filter((c) => !running.includes(c));
      const who =
        running.length > 0
          ? `containers ${named(running)}${idle.length > 0 ? `; also referenced by ${idle.length} not running: ${named(idle, 5)}` : ''}`
          : users && users.length > 0
            ? `containers ${named(users, 10)}`
            : `${mountIds.length} Docker mount(s) ${mountIds.map((m) => m.slice(0, 12)).join(', ')}`;
      throw new FerryError(
        'in_use',
        `volume ${name} is in use by ${who}; stop and remove those containers first` +
          (running.length === 0 ? ' (if no container uses it any more, `ferry volume rm --force` drops the stale mounts)' : ''),
        { containers: users ?? [], mountIds },
      );
    }
    const overrode = checkReferences ? await this.referenceProblems(rec, asked!, force) : [];
    if (overrode.length > 0) this.log.warn({ volume: name, overrode }, 'volume removed with --force although: ' + overrode.join('; '));
    const pool = this.pool(rec.pool);
    for (const id of mountIds) await this.catalog.changeMount(rec, id, '-', new Date(this.now()).toISOString());
    const removedAt = this.now();
    const trash: TrashRecord = {
      id: `${name}@${removedAt}`,
      removedAt: new Date(removedAt).toISOString(),
      expiresAt: new Date(removedAt + this.deps.trashRetentionMs).toISOString(),
      volume: { ...rec, mounts: {} },
    };
    await this.catalog.trash.save(trash.id, trash);
    // shared: withdraw the record first, so no host mounts the volume while its data moves away
    if (this.isShared(rec.pool)) await (await this.deps.cluster!.store(rec.pool)).unpublish(name, rec.createdAt);
    await pool.moveToTrash(name, trash.id);
    await this.catalog.volumes.save(name, undefined);
    if (purge) {
      await this.trash.purgeOne(trash);
      this.log.info({ volume: name }, 'volume removed and purged');
      return { trash: undefined, overrode };
    }
    this.log.info({ volume: name, trash: trash.id, expiresAt: trash.expiresAt }, 'volume moved to the trash');
    return { trash: trashInfo(trash, this.deps.node), overrode };
  }

  /** Which containers on this host reference a volume (any state), or why Docker could not be asked. */
  private async askDocker(name: string): Promise<{ containers?: ContainerRef[]; problem?: string }> {
    if (!this.deps.docker) return { containers: [] }; // dockerHost: none, no engine on this host
    try {
      return { containers: await this.deps.docker.containersUsing(name) };
    } catch (err) {
      return { problem: `the Docker engine at ${this.deps.dockerHost ?? 'its dockerHost'} did not answer (${errorMessage(err)})` };
    }
  }

  /**
   * What stands in the way of removing a volume no container has mounted: containers on this host that
   * reference it (stopped, created, dead: `docker start` would fail with "no such volume"), containers on
   * other live nodes of a shared pool, an engine that cannot be asked. Throws unless `force`; with
   * `force`, returns what was overridden.
   */
  private async referenceProblems(rec: VolumeRecord, asked: { containers?: ContainerRef[]; problem?: string }, force: boolean): Promise<string[]> {
    const name = rec.name;
    const refs: string[] = [];
    const unknown: string[] = [];
    if (asked.containers && asked.containers.length > 0) refs.push(`containers ${asked.containers.map((c) => `${c.name} (${c.state})`).join(', ')} on this host`);
    if (asked.problem) unknown.push(`cannot tell whether containers on this host reference volume ${name}: ${asked.problem}`);
    if (this.isShared(rec.pool)) {
      try {
        for (const r of await this.deps.cluster!.referencesElsewhere(rec.pool, name)) {
          if (r.containers.length > 0) refs.push(`containers ${r.containers.join(', ')} on node ${r.node}${r.docker === 'unreachable' ? ' (as last known)' : ''}`);
          if (r.docker === 'unreachable') unknown.push(`node ${r.node} cannot ask its Docker engine (${r.reason ?? 'no answer'})`);
        }
      } catch (err) {
        unknown.push(`cannot read what the other nodes of pool ${rec.pool} report (${errorMessage(err)})`);
      }
    }
    const problems = [...(refs.length ? [`volume ${name} is referenced by ${refs.join('; ')}`] : []), ...unknown];
    if (problems.length === 0 || force) return problems;
    if (refs.length > 0) {
      throw new FerryError(
        'in_use',
        `${problems.join('; ')}: Docker refuses \`docker volume rm\` for it, and those containers would fail to start ("no such volume"); remove them first (\`docker rm\`), or pass --force to remove it anyway`,
        { containers: asked.containers ?? [], problems },
      );
    }
    throw new FerryError('unavailable', `${problems.join('; ')}; start Docker (or check dockerHost), or pass --force to remove it anyway`, { problems });
  }

  // ---- the trash (trash.ts) and what Docker knew (docker-facts.ts) ----------------------------------

  trashList(): TrashInfo[] {
    return this.trash.list();
  }

  /**
   * Bring a removed volume back, under its own name or `as`, then give Docker back what it knew (its
   * labels and driver options), outside the volume's lock: Docker calls this plugin's Get (and Create) then.
   */
  async undelete(ref: string, as?: string): Promise<VolumeInfo & { docker: DockerTold }> {
    const v = this.info(await this.trash.undelete(ref, as));
    return { ...v, docker: await this.dockerFacts.tell(v.name) };
  }

  /** Delete trash entries for good: the given ones (ids or names), or all of them. */
  trashPurge(refs: string[] | 'all'): Promise<TrashInfo[]> {
    return this.trash.purge(refs);
  }

  purgeExpiredTrash(): Promise<number> {
    return this.trash.purgeExpired();
  }

  /** Remember what Docker's store holds for a volume (see DockerFacts.remember). */
  rememberDocker(name: string, v: { Driver: string; Labels: Record<string, string> | null; Options: Record<string, string> | null }, authoritative: boolean): Promise<boolean> {
    return this.dockerFacts.remember(name, v, authoritative);
  }

  // ---- status -------------------------------------------------------------------------------------

  async poolStatus(): Promise<PoolStatus[]> {
    const out: PoolStatus[] = [];
    for (const pool of this.deps.pools.values()) out.push(await pool.status());
    return out;
  }

  counts(): { volumes: number; mounted: number; mounts: number; trash: number } {
    const vols = this.catalog.volumes.values();
    const mounts = vols.map((v) => Object.keys(v.mounts).length);
    return {
      volumes: vols.length,
      mounted: mounts.filter((n) => n > 0).length,
      mounts: mounts.reduce((a, b) => a + b, 0),
      trash: this.catalog.trash.size,
    };
  }
}

function checkMountId(id: unknown): string {
  if (id === undefined || id === null || id === '') throw new FerryError('invalid', 'request field ID (the mount ID) is missing; Docker sends a hex ID');
  if (typeof id !== 'string') throw new FerryError('invalid', `request field ID (the mount ID) must be a string, not ${Array.isArray(id) ? 'an array' : typeof id}; Docker sends a hex ID`);
  if (id.length > 256 || !/^[\w.:-]+$/.test(id)) {
    throw new FerryError('invalid', `mount ID ${shown(id)} is malformed: use up to 256 characters of [a-zA-Z0-9_.:-]; Docker sends a hex ID`);
  }
  return id;
}

function sharedPart(rec: VolumeRecord): SharedRecord {
  const { mounts: _mounts, ...rest } = rec;
  return rest;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Create's Opts as Docker sent them, when they are what Docker sends (an object of strings). */
function rawOptions(v: unknown): DockerKnown | undefined {
  if (v === undefined || v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const entries = Object.entries(v as Record<string, unknown>);
  if (!entries.every(([, x]) => typeof x === 'string')) return undefined;
  return { options: Object.fromEntries(entries) as Record<string, string> };
}
