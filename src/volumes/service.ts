/** The volume service: the lifecycle of volumes (create, mount, unmount, remove) under a per-volume lock, and the one way to a volume's record; creation, mounts, removal, recovery, sizes, the shared cache, the handshake, the trash, attachments and Docker's facts are its parts. */
import type { Logger } from 'pino';
import type { Catalog, DockerKnown, VolumeRecord } from '../catalog/catalog.js';
import { checkVolumeName } from './names.js';
import type { VolumeOptions } from './options.js';
import type { Pool, PoolStatus } from '../pools/pool.js';
import type { ContainerRef } from '../docker/client.js';
import type { AttachmentStatus } from '../cluster/cluster.js';
import { KeyedLock } from '../util/keyed-lock.js';
import { FerryError } from '../util/errors.js';
import { salvage } from './salvage.js';
import { Trash, type TrashInfo } from './trash.js';
import { SharedCache, sharedPart } from './shared-cache.js';
import { Handshake } from './handshake.js';
import { Creation, existsError, sameOptions, type CloneSource } from './creation.js';
import { Removal, type RemoveOptions, type RemoveResult } from './removal.js';
import { recoverCatalog } from './recovery.js';
import { Attachments } from './attachments.js';
import { DockerUsers } from './docker-users.js';
import { DockerFacts, type DockerTold } from './docker-facts.js';
import { Mounts } from './mounts.js';
import { VolumeSizes } from './sizes.js';
import { Listing, type VolumeInfo } from './listing.js';
import type { RestoreReport, ServiceDeps } from './service-deps.js';

export type { TrashInfo, DockerTold, CloneSource, RemoveOptions, RemoveResult, VolumeInfo, RestoreReport, ServiceDeps };

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
  private readonly shared: SharedCache;
  private readonly handshake: Handshake;
  private readonly creation: Creation;
  private readonly removal: Removal;
  private readonly mounts: Mounts;
  private readonly listing: Listing;
  /** Size limits (`-o size=`, resize, limit and use): sizes.ts. */
  readonly sizes: VolumeSizes;

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
      ...(deps.cluster ? { cluster: deps.cluster } : {}),
    };
    this.listing = new Listing({ ...self, mountRoot: deps.mountRoot, roDir: deps.roDir });
    this.shared = new SharedCache(self);
    this.handshake = new Handshake(self);
    this.creation = new Creation(self);
    this.trash = new Trash({
      ...self,
      exists: async (name) => (await this.shared.sync(name)) !== undefined,
      publish: async (rec) => (await (await this.deps.cluster!.store(rec.pool)).publish(sharedPart(rec))),
    });
    this.sizes = new VolumeSizes({ ...self, holdExclusive: (rec, what, fn) => this.handshake.holdExclusive(rec, what, fn) });
    this.dockerUsers = new DockerUsers({ log: deps.log, now: this.now, ...(deps.docker ? { docker: deps.docker } : {}) });
    this.removal = new Removal({
      ...self,
      trashRetentionMs: deps.trashRetentionMs,
      ...(deps.docker ? { docker: deps.docker } : {}),
      ...(deps.dockerHost ? { dockerHost: deps.dockerHost } : {}),
      purge: (t) => this.trash.purgeOne(t),
    });
    this.attachments = new Attachments({
      ...self,
      ...(deps.docker ? { docker: deps.docker } : {}),
      syncAll: () => this.syncAll(),
      containersUsing: (name) => this.dockerUsers.using(name),
    });
    this.mounts = new Mounts({
      ...self,
      pools: deps.pools,
      ...(deps.mountRoot ? { mountRoot: deps.mountRoot } : {}),
      ...(deps.roDir ? { roDir: deps.roDir } : {}),
      record: (name) => this.record(name),
      mountpointOf: (rec) => this.mountpointOf(rec),
      sync: (name) => this.shared.sync(name),
      publish: (rec) => this.attachments.publish(rec),
      changedUnderMount: (rec) => this.handshake.changedUnderMount(rec),
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
    return this.listing.info(rec);
  }

  private isShared(pool: string): boolean {
    return this.deps.cluster?.isShared(pool) ?? false;
  }

  private mountpointOf(rec: VolumeRecord): string {
    return this.listing.mountpointOf(rec);
  }

  private record(name: string): VolumeRecord {
    const rec = this.catalog.volumes.get(checkVolumeName(name));
    if (!rec) {
      const inTrash = this.catalog.trash.countOf(name) > 0;
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

  /** What Docker's store held for a volume where it was made (its driver options and labels), if known. */
  dockerKnown(name: string): DockerKnown | undefined {
    return this.catalog.volumes.get(name)?.docker;
  }

  /** Restores and clones filling their volume now, or cut short by a crash and not removed at start-up: name → pool (fill-markers.ts). */
  fillsMarked(): Promise<Map<string, string | undefined>> {
    return this.catalog.filling.list();
  }

  /** Load the catalog and finish or roll back whatever a crash interrupted. */
  async start(): Promise<void> {
    for (const pool of this.deps.pools.values()) await pool.init();
    const bad = await this.catalog.load();
    await salvage(bad, { ...this.deps, now: this.now, log: this.log });
    await recoverCatalog({ ...this.deps, now: this.now, isShared: (pool) => this.isShared(pool) });
    await this.mounts.settle();
    await this.sizes.reconcile();
    await this.purgeExpiredTrash();
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
    const parsed = this.deps.parseOptions(optsIn);
    const poolName = parsed.pool ?? this.deps.defaultPool;
    const pool = this.pool(poolName); // an unknown pool is refused before the lock
    // what the pool gives a volume that does not say (an image pool's default size), recorded as if asked for
    let opts = pool.completeOptions?.(parsed) ?? parsed;
    // an image on a share is one filesystem that one host mounts at a time: rwo, always
    if (pool.shared && pool.attach) {
      if (opts.access !== undefined && opts.access !== 'rwo') {
        throw new FerryError('invalid', `option access=${opts.access}: pool ${poolName} holds filesystem images on a share, which one host at a time mounts (access=rwo); for a volume several hosts mount at once, use a shared pool of kind dir`);
      }
      opts = { ...opts, access: 'rwo' };
    }
    if (opts.backup && !this.deps.restoreBackup) throw new FerryError('invalid', 'restores from backups are not available on this node');
    const fill = opts.backup ? (dir: string) => this.deps.restoreBackup!(opts.backup!, dir, progress) : undefined;
    if (opts.from) {
      if (!this.deps.resolveClone) throw new FerryError('invalid', 'clones are not available on this node');
      if (opts.from.split('@')[0] === name) throw new FerryError('invalid', `volume ${name} cannot be cloned from itself`);
    }
    if (opts.fs !== undefined && pool.kind !== 'image') throw new FerryError('invalid', `option fs=${opts.fs}: pool ${poolName} is a ${pool.kind} pool; fs= picks the filesystem of an image volume (a pool of kind image)`);
    const docker = rawOptions(dockerOptions);
    return this.lock.run(name, async () => {
      const existing = await this.shared.sync(name);
      if (existing) {
        const same = sameOptions(existing, opts, poolName);
        if (ifMissing && same) return this.info(existing);
        throw existsError(name, this.isShared(existing.pool) ? existing.node : undefined, ifMissing);
      }
      this.deps.checkNewOptions?.(opts);
      let v = { name, pool: poolName, opts, labels, fill, docker };
      if (opts.from) {
        const source = await this.deps.resolveClone!(opts.from);
        // a clone goes to its snapshot's pool unless the user named one
        v = opts.pool === undefined && source.pool !== poolName ? { ...v, pool: source.pool, opts: { ...opts, pool: source.pool }, fill: undefined } : v;
        return this.info(await (this.isShared(v.pool) ? this.creation.shared({ ...v, source }, ifMissing) : this.creation.local({ ...v, source })));
      }
      return this.info(await (this.isShared(poolName) ? this.creation.shared(v, ifMissing) : this.creation.local(v)));
    });
  }

  /** Remove the staging directories of shared creates whose ferryd is gone (see SharedCache.sweepStaging). */
  sweepStaging(): Promise<void> {
    return this.shared.sweepStaging();
  }

  /** Learn every volume of the shared pools and drop those removed elsewhere (see SharedCache.syncAll). */
  syncAll(): Promise<void> {
    return this.shared.syncAll();
  }

  /** The volume, looking it up in the shared pools when this node does not know it yet. */
  async lookup(nameIn: unknown): Promise<VolumeInfo> {
    const name = checkVolumeName(nameIn);
    if (!this.catalog.volumes.has(name) && this.deps.cluster?.active) await this.lock.run(name, () => this.shared.sync(name));
    return this.get(name);
  }

  /** Refuse when another node has the volume mounted (see Handshake.refuseIfUsedElsewhere). */
  refuseIfUsedElsewhere(rec: VolumeRecord, what: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.handshake.refuseIfUsedElsewhere(rec, what, opts);
  }

  /** Run `fn` while this node may attach the volume (a shared image: one host at a time; callers hold its lock): see Handshake.holdExclusive. */
  holdExclusive<T>(rec: VolumeRecord, what: string, fn: () => Promise<T>): Promise<T> {
    return this.handshake.holdExclusive(rec, what, fn);
  }

  /** Run a change that needs the volume unmounted everywhere (restore, reset; callers hold its lock): see Handshake.changeExclusively. */
  async changeExclusively<T>(rec: VolumeRecord, what: string, fn: () => Promise<T>, opts: { force?: boolean } = {}): Promise<T> {
    const result = await this.handshake.changeExclusively(rec, what, fn, opts);
    this.onDataChanged?.(rec.name);
    return result;
  }

  /** Told of each volume whose live data such a change replaced (set by the daemon: the usage figures walk it again). */
  onDataChanged?: (name: string) => void;

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
  async refreshAttachments(): Promise<void> {
    await this.mounts.retryDetach();
    return this.attachments.refresh();
  }

  /** The containers of this host that hold each volume; undefined when Docker does not answer. */
  containersHolding(): Promise<Map<string, ContainerRef[]> | undefined> {
    return this.dockerUsers.holding();
  }

  containersUsing(name: string): Promise<ContainerRef[] | undefined> {
    return this.dockerUsers.using(name);
  }

  /** Of a shared volume: the containers on other live nodes that reference it, as those nodes report them (none when it cannot be read). */
  async referencedElsewhere(v: VolumeInfo): Promise<Array<{ node: string; containers: string[] }>> {
    if (!v.shared || !this.deps.cluster) return [];
    const refs = await this.deps.cluster.referencesElsewhere(v.pool, v.name).catch(() => []);
    return refs.filter((r) => r.containers.length > 0).map((r) => ({ node: r.node, containers: r.containers }));
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

  /** Changes with every change of the catalog (volumes, their mounts, the trash): a listing made at one version is right while it holds. */
  get version(): number {
    return this.catalog.version;
  }

  /** Serves shared pools: a volume's listing then also holds what other nodes do with it, which the catalog's version does not count. */
  get clustered(): boolean {
    return this.deps.cluster?.active ?? false;
  }

  /** Does any volume have a Docker mount on this node? */
  anyMounted(): boolean {
    return this.listing.anyMounted();
  }

  get(name: string): VolumeInfo {
    return this.info(this.record(name));
  }

  /** Does this node know a live volume of that name (shared ones as of the last sync)? */
  has(name: string): boolean {
    return this.catalog.volumes.has(name);
  }

  /** Every volume, sorted by name; listEach makes them one at a time (see Listing). */
  list(): VolumeInfo[] {
    return this.listing.list();
  }

  listEach(): Generator<VolumeInfo> {
    return this.listing.listEach();
  }

  /** The names in list order with their records' stamps (see Listing.listStamps): for lists that keep what they made of each volume. */
  listStamps(): Generator<[name: string, stamp: number]> {
    return this.listing.listStamps();
  }

  names(): string[] {
    return this.listing.names();
  }

  incarnations(): Map<string, string> {
    return this.listing.incarnations();
  }

  /** How many volumes there are. */
  get count(): number {
    return this.catalog.volumes.size;
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

  /** Docker mounts a volume for a container; `id` is Docker's mount ID. Idempotent per ID (mounts.ts). */
  mount(name: string, id: unknown): Promise<string> {
    return this.mounts.mount(name, id);
  }

  /** The volumes with mounts on this node, each mount's Docker ID and when it was made (stale-mounts.ts). */
  mountsHeld(): Array<{ name: string; mounts: Array<{ id: string; since: string }> }> {
    return this.mounts.held();
  }

  /** Docker unmounts; an unknown ID (after a failed Mount, or a duplicate) is accepted. */
  unmount(name: string, id: unknown): Promise<void> {
    return this.mounts.unmount(name, id);
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
      const rec = (await this.shared.sync(name)) ?? this.record(name);
      // shared: mark the removal before the last look at the attachments (the handshake with mount())
      return this.handshake.changeExclusively(rec, 'remove it', () => this.removal.run(rec, { purge, force, checkReferences, early }), { force });
    });
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
    return this.listing.counts();
  }
}

/** Create's Opts as Docker sent them, when they are what Docker sends (an object of strings). */
function rawOptions(v: unknown): DockerKnown | undefined {
  if (v === undefined || v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const entries = Object.entries(v as Record<string, unknown>);
  if (!entries.every(([, x]) => typeof x === 'string')) return undefined;
  return { options: Object.fromEntries(entries) as Record<string, string> };
}
