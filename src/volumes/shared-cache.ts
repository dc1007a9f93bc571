/** This node's cache of the shared pools' catalogs: one volume brought in line (sync), all of them (syncAll), and the staging directories of creates killed mid-way swept. */
import type { Logger } from 'pino';
import type { Catalog, VolumeRecord } from '../catalog/catalog.js';
import type { Cluster } from '../cluster/cluster.js';
import type { SharedRecord } from '../cluster/shared-store.js';
import type { Pool } from '../pools/pool.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import { errorMessage } from '../util/errors.js';
import { forEachLimit } from '../util/parallel.js';
import { stagingOwner } from './staging.js';

/** What the cache needs of the volume service. */
export interface SharedCacheContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly lock: KeyedLock;
  readonly cluster?: Cluster;
  pool(name: string): Pool;
  isShared(pool: string): boolean;
}

/** The part of a volume record every host sees (the mounts are this node's own). */
export function sharedPart(rec: VolumeRecord): SharedRecord {
  const { mounts: _mounts, ...rest } = rec;
  return rest;
}

export class SharedCache {
  private syncing: Promise<void> | undefined;
  private syncNext: Promise<void> | undefined;

  constructor(private readonly c: SharedCacheContext) {}

  /**
   * Bring this node's cached record of `name` in line with the shared pools (callers hold its lock).
   * A record removed or re-created elsewhere is dropped or replaced, unless this node still has it
   * mounted. A shared pool that cannot be read changes nothing: never forget a volume because a
   * backend is slow or down (Docker would forget it too).
   */
  async sync(name: string): Promise<VolumeRecord | undefined> {
    const { cluster, catalog } = this.c;
    const local = catalog.volumes.get(name);
    if (!cluster?.active || (local && !this.c.isShared(local.pool))) return local;
    for (const pool of local ? [local.pool] : cluster.sharedPools()) {
      let shared: SharedRecord | undefined;
      try {
        shared = await (await cluster.store(pool)).read(name);
      } catch {
        continue;
      }
      if (local && Object.keys(local.mounts).length > 0 && shared?.createdAt !== local.createdAt) {
        this.c.log.warn({ volume: name, pool }, 'volume was removed or re-created on another node while mounted here; keeping it until unmounted');
        return local;
      }
      if (!shared) {
        if (!local) continue; // not in this shared pool: maybe in the next one
        // gone from the share, or the share went away between the check and the read: look again
        if (local && (await this.c.pool(pool).checkAvailable().then(() => true, () => false))) await catalog.volumes.forget(name);
        return catalog.volumes.has(name) ? local : undefined;
      }
      if (local?.createdAt === shared.createdAt) return local;
      if (local) await catalog.volumes.forget(name);
      const rec: VolumeRecord = { ...shared, mounts: {} };
      catalog.volumes.put(name, rec);
      return rec;
    }
    return local;
  }

  /**
   * Learn every volume of the shared pools and drop those removed elsewhere (for List and the heartbeat).
   * A caller always gets a pass that read the shared catalogs after it called: while one pass runs, later
   * callers share the single pass that follows it.
   */
  syncAll(): Promise<void> {
    if (!this.c.cluster?.active) return Promise.resolve();
    if (!this.syncing) return (this.syncing = this.syncPass().finally(() => (this.syncing = undefined)));
    return (this.syncNext ??= this.syncing
      .catch(() => undefined)
      .then(() => {
        this.syncNext = undefined;
        return this.syncAll();
      }));
  }

  /**
   * A pool's catalog directory is listed only when its attributes show a change (a record linked or renamed away)
   * since a settled listing, or the last listing is a minute old (SharedStore.namesIfChanged): an idle pool costs one
   * look-up per heartbeat or List, not a listing of every record (10,000 records: a second or more on GlusterFS).
   * A change made on another node shows once this node's attributes of the directory show it (GlusterFS: at once
   * or within its 1 s attribute cache; NFS: `actimeo`, see docs/shared-pools.md). Get of an unknown name reads
   * the record itself.
   */
  private async syncPass(): Promise<void> {
    const cluster = this.c.cluster!;
    for (const pool of cluster.sharedPools()) {
      let names: string[] | undefined;
      try {
        names = await (await cluster.store(pool)).namesIfChanged();
      } catch {
        continue;
      }
      if (names) await this.syncPool(pool, names);
    }
  }

  private async syncPool(pool: string, list: string[]): Promise<void> {
    const names = new Set(list);
    const added = [...names].filter((n) => !this.c.catalog.volumes.has(n));
    const gone = this.c.catalog.volumes.values().filter((r) => r.pool === pool && !names.has(r.name)).map((r) => r.name);
    await forEachLimit([...added, ...gone], 32, (n) => this.c.lock.run(n, async () => void (await this.sync(n))));
  }

  /**
   * Remove the staging directories of shared creates whose ferryd is gone (killed mid-way, on any node): those
   * whose instance is neither this ferryd nor one with a live heartbeat. Nothing in them was ever a volume
   * (its Create was never answered), so they are deleted, with a warning each. Called once the cluster has
   * beaten, at start-up.
   */
  async sweepStaging(): Promise<void> {
    const cluster = this.c.cluster;
    if (!cluster?.active) return;
    const live = new Set((await cluster.nodes()).filter((n) => n.alive && n.instance).map((n) => n.instance!));
    live.add(cluster.instance);
    for (const poolName of cluster.sharedPools()) {
      const pool = this.c.pool(poolName);
      for (const id of await pool.listStaged()) {
        if (live.has(stagingOwner(id))) continue;
        this.c.log.warn({ pool: poolName, stage: id }, 'removing what a create killed mid-way left in the staging directory (its ferryd is gone; the create was never answered)');
        await pool.discardStaged(id).catch((err) => this.c.log.error({ pool: poolName, stage: id, err: errorMessage(err) }, 'could not remove a staging directory'));
      }
    }
  }
}
