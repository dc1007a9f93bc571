/** Docker's Mount and Unmount on this host: reference counts in the mount journal, an image's attach and detach, a shared volume's attachment and rwo lock, and what start-up keeps attached. */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Catalog, VolumeRecord } from '../catalog/catalog.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Pool } from '../pools/pool.js';
import { FerryError, errorMessage } from '../util/errors.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import { noSpaceError } from '../util/no-space.js';
import { shown } from '../util/shown.js';
import { pauseAt } from '../util/test-pause.js';
import { accessOf } from './access.js';
import { checkVolumeName } from './names.js';
import { dropReadOnlyView, ensureReadOnlyView, ensureView } from './ro-view.js';

/** What the mounts need of the volume service. */
export interface MountsContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly now: () => number;
  readonly lock: KeyedLock;
  readonly pools: ReadonlyMap<string, Pool>;
  readonly cluster?: Cluster;
  /** A managed plugin's propagatedMount (see ServiceDeps.mountRoot). */
  readonly mountRoot?: string;
  /** Where read-only views of rox volumes are mounted. */
  readonly roDir?: string;
  pool(name: string): Pool;
  isShared(pool: string): boolean;
  record(name: string): VolumeRecord;
  mountpointOf(rec: VolumeRecord): string;
  /** A shared volume's record, learned from the shared pool when this node does not know it yet (SharedCache.sync). */
  sync(name: string): Promise<VolumeRecord | undefined>;
  /** Publish this node's attachment of a shared volume (Attachments.publish). */
  publish(rec: VolumeRecord): Promise<void>;
  /** Was the volume removed or marked for a change on another node while this Mount started (Handshake.changedUnderMount)? */
  changedUnderMount(rec: VolumeRecord): Promise<FerryError | undefined>;
}

export class Mounts {
  /** Volumes whose last Unmount here could not detach their image (something still used its filesystem). */
  private readonly undetached = new Set<string>();

  constructor(private readonly c: MountsContext) {}

  /**
   * Heartbeat work: let go again of the volumes whose image could not be detached at their last Unmount (the
   * process that held the filesystem may have ended), so that an rwo volume does not stay held here for ever.
   */
  async retryDetach(): Promise<void> {
    for (const name of [...this.undetached]) {
      await this.c.lock.run(name, async () => {
        const rec = this.c.catalog.volumes.get(name);
        this.undetached.delete(name);
        if (rec && Object.keys(rec.mounts).length === 0) await this.letGo(rec);
      });
    }
  }

  /** Docker mounts a volume for a container; `id` is Docker's mount ID. Idempotent per ID. */
  async mount(nameIn: string, id: unknown): Promise<string> {
    const name = checkVolumeName(nameIn);
    const mountId = checkMountId(id);
    const { durable, mountpoint } = await this.c.lock.run(name, async () => {
      // a volume this node knows: its pool's checks go out beside the look at its shared record (one round trip
      // to a share, not two); what the look finds (removed, re-created) counts first
      const known = this.c.catalog.volumes.get(name);
      const early = known ? this.mountable(known.pool, name) : undefined;
      const rec = await (async () => (await this.c.sync(name)) ?? this.c.record(name))().catch(async (err: unknown) => {
        await early;
        throw err;
      });
      const pool = this.c.pool(rec.pool);
      const refused = early && known!.pool === rec.pool ? await early : await this.mountable(rec.pool, name);
      if (refused) throw refused.err;
      const shared = this.c.isShared(rec.pool);
      const first = Object.keys(rec.mounts).length === 0;
      // the first Mount here of a shared volume: this node's path to its data must lead to this volume's directory and
      // to the data its last restore made (data-id.ts), looked at after the restore mark was found gone (a finished
      // restore wrote its note before it dropped the mark); later Mounts here need not look: no restore or removal
      // runs while this node has the volume mounted
      if (shared && first) await pool.freshData?.(name, rec.dirIno);
      if (shared && accessOf(rec) === 'rwo' && !(await this.c.cluster!.stillHeld(rec.pool, name))) await this.c.cluster!.acquire(rec.pool, rec);
      // an image volume: the first Mount on this host attaches and mounts its image (or the next one, when a
      // shared image Docker had mounted was not mounted here any more at start-up: see ImagePool.settleShared)
      if (pool.attach && (first || pool.attached?.(name) === false)) {
        try {
          await pool.attach(name);
        } catch (err) {
          if (first) await this.letGo(rec, { attached: false });
          throw err;
        }
      }
      try {
        if (this.c.mountRoot) await ensureView(pool.mountpoint(name), this.c.mountpointOf(rec), accessOf(rec) === 'rox');
        else if (accessOf(rec) === 'rox' && this.c.roDir) await ensureReadOnlyView(pool.mountpoint(name), this.c.mountpointOf(rec));
        // the journal's entries of a volume count only if its record is on this node's disk too
        if (shared && !this.c.catalog.volumes.isOnDisk(name)) await this.c.catalog.volumes.save(name, rec);
      } catch (err) {
        if (first) await this.letGo(rec);
        throw err;
      }
      const durable = rec.mounts[mountId] ? Promise.resolve() : this.c.catalog.changeMount(rec, mountId, '+', new Date(this.c.now()).toISOString());
      if (shared) {
        await pauseAt('mount-before-attach');
        await this.c.publish(rec).catch((err) => this.c.log.warn({ volume: name, err: errorMessage(err) }, 'could not publish attachment'));
        // first mount here: a removal or restore on another node may have looked at the attachments before ours landed
        await pauseAt('mount-before-check');
        const changed = first ? await this.c.changedUnderMount(rec) : undefined;
        if (changed) {
          const undone = this.c.catalog.changeMount(rec, mountId, '-', new Date(this.c.now()).toISOString());
          await this.letGo(rec);
          await Promise.all([durable, undone]).catch((err) => this.c.log.warn({ volume: name, err: errorMessage(err) }, 'could not write the mount journal'));
          this.c.log.warn({ volume: name, id: mountId, err: changed.message }, 'Mount backed out');
          throw changed;
        }
      }
      return { durable, mountpoint: this.c.mountpointOf(rec) };
    });
    // Wait outside the lock: concurrent Mounts of this volume share one journal flush.
    await this.persisted(name, durable);
    this.c.log.debug({ volume: name, id: mountId }, 'mounted');
    return mountpoint;
  }

  /** Why the volume cannot be mounted now (pool.checkMountable), as a value: it may be looked at before it is awaited. */
  private async mountable(pool: string, name: string): Promise<{ err: unknown } | undefined> {
    try {
      await this.c.pool(pool).checkMountable(name);
      return undefined;
    } catch (err) {
      return { err };
    }
  }

  /** The volumes with mounts on this node, each mount's Docker ID and when it was made (stale-mounts.ts). */
  held(): Array<{ name: string; mounts: Array<{ id: string; since: string }> }> {
    const out: Array<{ name: string; mounts: Array<{ id: string; since: string }> }> = [];
    for (const rec of this.c.catalog.volumes.values()) {
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
    const { durable } = await this.c.lock.run(name, async () => {
      const rec = this.c.catalog.volumes.get(name);
      if (!rec || !rec.mounts[mountId]) {
        this.c.log.debug({ volume: name, id: mountId }, 'unmount of an unknown mount ID accepted');
        return { durable: Promise.resolve() };
      }
      const durable = this.c.catalog.changeMount(rec, mountId, '-', new Date(this.c.now()).toISOString());
      if (Object.keys(rec.mounts).length === 0) await this.letGo(rec);
      else await this.c.publish(rec).catch((err) => this.c.log.warn({ volume: name, err: errorMessage(err) }, 'could not publish attachment'));
      return { durable };
    });
    await this.persisted(name, durable);
  }

  /**
   * The last mount on this node is gone: drop the read-only view, detach an image, withdraw the attachment, release
   * the rwo lock. An image that could not be detached (something still uses its filesystem) keeps the lock: another
   * host must not mount a filesystem this one still has mounted; the next heartbeat keeps holding it.
   */
  private async letGo(rec: VolumeRecord, { attached = true }: { attached?: boolean } = {}): Promise<void> {
    const warn = (what: string) => (err: unknown) => this.c.log.warn({ volume: rec.name, err: errorMessage(err) }, `could not ${what}`);
    if (this.c.mountRoot) await dropReadOnlyView(this.c.mountpointOf(rec)).catch(warn('drop the bind mount for Docker'));
    else if (accessOf(rec) === 'rox' && this.c.roDir) await dropReadOnlyView(this.c.mountpointOf(rec)).catch(warn('drop read-only view'));
    const pool = this.c.pool(rec.pool);
    let detached = true;
    if (attached && pool.detach) {
      await pool.detach(rec.name).catch((err: unknown) => {
        detached = false;
        this.undetached.add(rec.name);
        this.c.log.error({ volume: rec.name, err: errorMessage(err) }, 'could not detach the image of a volume whose last mount here is gone; it stays attached (and an rwo volume stays held by this node) until nothing uses it');
      });
    }
    if (!this.c.isShared(rec.pool)) return;
    await this.c.publish(rec).catch(warn('withdraw attachment'));
    if (accessOf(rec) === 'rwo' && detached) await this.c.cluster!.release(rec.pool, rec.name).catch(warn('release rwo lock'));
  }

  private async persisted(name: string, durable: Promise<void>): Promise<void> {
    try {
      await durable;
    } catch (err) {
      this.c.log.error({ volume: name, err: errorMessage(err) }, 'could not write the mount journal');
      const full = await noSpaceError(err, `the data dir ${dirname(this.c.catalog.dir)}`, this.c.catalog.dir, `recording the mount of ${name}`);
      if (full !== err) throw full;
      throw new FerryError('unavailable', `could not record the mount of ${name} on disk: ${errorMessage(err)}; check the disk of the data dir`);
    }
  }


  /** Start-up, image pools: what Docker still has mounted here stays attached (a restart of ferryd), the rest is detached. */
  async settle(): Promise<void> {
    for (const [poolName, pool] of this.c.pools) {
      if (!pool.settle) continue;
      const inUse = new Set(this.c.catalog.volumes.values().filter((r) => r.pool === poolName && Object.keys(r.mounts).length > 0).map((r) => r.name));
      await pool.settle(inUse).catch((err) => this.c.log.error({ pool: poolName, err: errorMessage(err) }, 'could not attach the images of the volumes Docker has mounted'));
    }
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
