/** What this node tells the other nodes of a shared pool: its attachments (with container names), the containers that reference each volume, and which node runs a shared volume's schedules. */
import type { Logger } from 'pino';
import type { Catalog, VolumeRecord } from '../catalog/catalog.js';
import type { AttachmentStatus, Cluster } from '../cluster/cluster.js';
import { mayHoldMounts, type ContainerRef, type DockerClient } from '../docker/client.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import { errorMessage } from '../util/errors.js';
import { accessOf } from './access.js';

/** What the attachments need of the volume service. */
export interface AttachmentsContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly node: string;
  readonly now: () => number;
  readonly lock: KeyedLock;
  readonly cluster?: Cluster;
  readonly docker?: DockerClient;
  isShared(pool: string): boolean;
  /** Learn the shared catalog (every shared pool; a pool whose catalog did not change is not listed again). */
  syncAll(): Promise<void>;
  containersUsing(name: string): Promise<ContainerRef[] | undefined>;
}

/** An unchanged references file is written again after this long (it is read only for its content: a removal elsewhere). */
const REFERENCES_REWRITE_MS = 60_000;

export class Attachments {
  constructor(private readonly c: AttachmentsContext) {}

  /**
   * Attachments of every volume of the shared pools (for listings and schedules), by volume name; liveness from
   * the heartbeat watch. A pool whose attachments cannot be read is left out, and added to `unread` if given.
   */
  async byVolume(unread?: Set<string>): Promise<Map<string, AttachmentStatus[]>> {
    const out = new Map<string, AttachmentStatus[]>();
    const cluster = this.c.cluster;
    if (!cluster?.active) return out;
    for (const pool of cluster.sharedPools()) {
      let all: AttachmentStatus[];
      try {
        all = await cluster.attachments(pool, undefined, true);
      } catch {
        unread?.add(pool);
        continue;
      }
      for (const a of all) {
        const rec = this.c.catalog.volumes.get(a.volume);
        if (rec && rec.createdAt !== a.createdAt) continue; // of an older incarnation of the name
        out.set(a.volume, [...(out.get(a.volume) ?? []), a]);
      }
    }
    return out;
  }

  /**
   * Which volumes this node runs schedules for. A shared volume is seen by every node, but only one
   * should snapshot it: the first (by name) live node that has it attached, or when nobody does, the
   * first live node of the cluster. Not this node when it cannot tell: the pool's attachments could not be
   * read, or it finds no live node, itself included (its own heartbeat not seen). Taken as "nobody has it
   * attached, I am first", that ran one slot's backup on two nodes at once (a user trial on GlusterFS: 3
   * slots in 15); a slot skipped here runs at a later pass, as a missed one.
   */
  async scheduledHere(): Promise<(v: { name: string; shared: boolean; pool: string }) => boolean> {
    const cluster = this.c.cluster;
    if (!cluster?.active) return () => true;
    const unread = new Set<string>();
    const atts = await this.byVolume(unread);
    const alive = await cluster.liveNodes();
    return (v) => {
      if (!v.shared) return true;
      if (unread.has(v.pool)) return false;
      const attached = (atts.get(v.name) ?? []).filter((a) => a.alive).map((a) => a.node).sort();
      return (attached.length ? attached : alive)[0] === this.c.node;
    };
  }

  private readonly containerNames = new Map<string, string[]>();

  /** Withdrawals that failed (the share did not answer): name → pool, tried again at each heartbeat. */
  private readonly withdrawing = new Map<string, string>();

  /** Publish this node's use of a shared volume (or withdraw it when unmounted). */
  async publish(rec: VolumeRecord): Promise<void> {
    if (!this.c.isShared(rec.pool)) return;
    const mounts = Object.entries(rec.mounts);
    if (mounts.length === 0) {
      // a withdrawal that failed would leave this node listed as using the volume, barring removals and restores
      try {
        await (await this.c.cluster!.store(rec.pool)).detach(rec.name, this.c.node);
        this.withdrawing.delete(rec.name);
      } catch (err) {
        this.withdrawing.set(rec.name, rec.pool);
        throw err;
      }
      return;
    }
    this.withdrawing.delete(rec.name);
    const store = await this.c.cluster!.store(rec.pool);
    await store.attach({
      node: this.c.node,
      volume: rec.name,
      createdAt: rec.createdAt,
      access: accessOf(rec),
      mountIds: mounts.map(([id]) => id),
      containers: this.containerNames.get(rec.name) ?? [],
      since: mounts.map(([, m]) => m.since).sort()[0]!,
      updatedAt: new Date(this.c.now()).toISOString(),
    });
  }

  /**
   * Heartbeat work: learn the shared catalog, re-publish this node's attachments with the names of the
   * containers (asked of Docker here, not on the Mount path), and hold the rwo volumes mounted here.
   */
  async refresh(): Promise<void> {
    await this.c.syncAll();
    const cluster = this.c.cluster!;
    for (const rec of this.c.catalog.volumes.values()) {
      if (!this.c.isShared(rec.pool) || Object.keys(rec.mounts).length === 0) continue;
      await this.c.lock.run(rec.name, async () => {
        // the containers that hold it (an exited one that only references it is no user to stop: "in use on node A (ws)")
        const users = (await this.c.containersUsing(rec.name))?.filter((c) => mayHoldMounts(c.state)).map((c) => c.name).sort();
        if (users) this.containerNames.set(rec.name, users);
        if (accessOf(rec) === 'rwo' && !(await cluster.stillHeld(rec.pool, rec.name))) {
          try {
            await cluster.acquire(rec.pool, rec);
          } catch (err) {
            this.c.log.error({ volume: rec.name, err: errorMessage(err) }, 'an rwo volume mounted here is held by another node');
          }
        }
        await this.publish(rec);
      }).catch((err) => this.c.log.warn({ volume: rec.name, err: errorMessage(err) }, 'could not publish attachment'));
    }
    // what the share did not take while it did not answer: a withdrawal, a release
    // (each under the volume's lock: no Mount of it meanwhile; what fails is tried at the next heartbeat)
    for (const [name, pool] of this.withdrawing) {
      await this.c.lock
        .run(name, async () => {
          const rec = this.c.catalog.volumes.get(name);
          if (!this.withdrawing.has(name) || (rec && Object.keys(rec.mounts).length > 0)) return; // mounted again: published
          await (await cluster.store(pool)).detach(name, this.c.node);
          this.withdrawing.delete(name);
          this.c.log.info({ volume: name }, 'withdrew an attachment whose withdrawal had failed');
        })
        .catch(() => undefined);
    }
    for (const { pool, volume } of cluster.pendingReleases()) await this.c.lock.run(volume, () => cluster.retryRelease(pool, volume)).catch(() => undefined);
    await this.publishReferences();
  }

  /** What was last written per shared pool, and when (this node's clock, ms). */
  private readonly lastPublished = new Map<string, { text: string; at: number }>();

  /** The last list of references this node could learn from Docker, per shared pool (kept while Docker is down). */
  private readonly lastReferences = new Map<string, Record<string, string[]>>();

  /**
   * Publish, per shared pool, which of its volumes containers on this host reference, mounted or not (one
   * `GET /containers/json?all=1`): a removal on another node refuses while they do.
   */
  private async publishReferences(): Promise<void> {
    const cluster = this.c.cluster!;
    let docker: 'ok' | 'none' | 'unreachable' = 'none';
    let reason: string | undefined;
    let list: Array<ContainerRef & { volumes: string[] }> = [];
    if (this.c.docker) {
      try {
        list = await this.c.docker.containerVolumes();
        docker = 'ok';
      } catch (err) {
        docker = 'unreachable';
        reason = errorMessage(err);
      }
    }
    for (const pool of cluster.sharedPools()) {
      let volumes: Record<string, string[]> = {};
      if (docker === 'unreachable') volumes = this.lastReferences.get(pool) ?? {};
      else {
        const names = new Set(this.c.catalog.volumes.values().filter((r) => r.pool === pool).map((r) => r.name));
        for (const c of list) for (const v of c.volumes) if (names.has(v)) (volumes[v] ??= []).push(`${c.name} (${c.state})`);
        this.lastReferences.set(pool, volumes);
      }
      // written again only when it changed, or a minute after the last write (an idle node rewrote it every beat)
      const text = JSON.stringify([docker, reason, volumes]);
      const last = this.lastPublished.get(pool);
      if (last?.text === text && this.c.now() - last.at < REFERENCES_REWRITE_MS) continue;
      await cluster
        .publishReferences(pool, { updatedAt: new Date(this.c.now()).toISOString(), docker, ...(reason ? { reason } : {}), volumes })
        .then(() => this.lastPublished.set(pool, { text, at: this.c.now() }))
        .catch((err) => this.c.log.warn({ pool, err: errorMessage(err) }, 'could not publish container references'));
    }
  }
}
