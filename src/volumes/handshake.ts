/** The handshake between a change that needs a shared volume unmounted everywhere (remove, restore, reset) and a Mount starting on another node: marks on the share, a last look at the attachments; and the one host at a time of a shared image. */
import type { Logger } from 'pino';
import type { Pool } from '../pools/pool.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import { DEAD_NODE_HOLD_MS, type Cluster } from '../cluster/cluster.js';
import type { SharedRecord } from '../cluster/shared-store.js';
import { FerryError, errorMessage } from '../util/errors.js';

/** What the handshake needs of the volume service. */
export interface HandshakeContext {
  readonly log: Logger;
  readonly cluster?: Cluster;
  isShared(pool: string): boolean;
  pool(name: string): Pool;
}

export class Handshake {
  constructor(private readonly c: HandshakeContext) {}

  /**
   * Refuse when another node has the volume mounted: a live one, or one that stopped beating a short while ago
   * (Cluster.usedElsewhere: its containers may run on). `force` (--force of a removal, restore, checkout or reset) overrides the latter only.
   */
  async refuseIfUsedElsewhere(rec: VolumeRecord, what: string, { force = false } = {}): Promise<void> {
    if (!this.c.isShared(rec.pool)) return;
    const elsewhere = await this.c.cluster!.usedElsewhere(rec.pool, rec);
    const users = (as: typeof elsewhere) => as.map((a) => `node ${a.node} (${a.containers.length ? a.containers.join(', ') : `${a.mountIds.length} mount(s)`})`).join(', ');
    const live = elsewhere.filter((a) => a.alive);
    if (live.length > 0) throw new FerryError('in_use', `volume ${rec.name} is in use on ${users(live)}; stop those containers before you ${what}`, { attachments: live });
    const silent = elsewhere.filter((a) => !a.alive);
    if (silent.length === 0 || force) return;
    const since = silent.map((a) => `${a.node} since ${a.lastSeen ?? '?'}`).join(', ');
    throw new FerryError(
      'in_use',
      `volume ${rec.name} is mounted on ${users(silent)}, which sent no heartbeat (${since}): its ferryd may be down while those containers still run and write. Stop them there before you ${what}. ` +
        `If that node is down for good, this refusal ends ${Math.round(DEAD_NODE_HOLD_MS / 60_000)} minutes after its last heartbeat (or pass --force${what === 'remove it' ? `: \`ferry volume rm --force ${rec.name}\`` : ''})`,
      { attachments: silent },
    );
  }

  /**
   * Run a change that needs the volume unmounted everywhere (remove, restore, reset; callers hold its lock):
   * on a shared pool, mark the change in progress before the last look at the other nodes' attachments, so
   * a Mount that starts meanwhile on another node sees the mark and backs out (changedUnderMount).
   */
  async changeExclusively<T>(rec: VolumeRecord, what: string, fn: () => Promise<T>, { force = false } = {}): Promise<T> {
    if (!this.c.isShared(rec.pool)) return fn();
    const end = await this.c.cluster!.beginChange(rec.pool, rec, what);
    try {
      await this.refuseIfUsedElsewhere(rec, what, { force });
      return await this.holdExclusive(rec, what, fn);
    } finally {
      await end();
    }
  }

  /**
   * Run `fn` while this node holds the rwo lock of a shared image volume (callers hold the volume's lock): an
   * image is attached by one host at a time, and a snapshot, a resize or a restore attaches it as a Mount does.
   * Held here already (mounted here): `fn` runs. Held by another live node: refused, naming it. Otherwise the
   * lock is taken for `fn` and given back after it. Volumes of other pools: `fn` runs.
   */
  async holdExclusive<T>(rec: VolumeRecord, what: string, fn: () => Promise<T>): Promise<T> {
    if (!this.c.isShared(rec.pool) || !this.c.pool(rec.pool).attach) return fn();
    const cluster = this.c.cluster!;
    const had = await cluster.stillHeld(rec.pool, rec.name);
    if (!had) {
      try {
        await cluster.acquire(rec.pool, rec);
      } catch (err) {
        if (!(err instanceof FerryError && err.code === 'in_use')) throw err;
        const holder = String(err.details?.holder ?? 'another node');
        throw new FerryError(
          'in_use',
          `cannot ${what} here: the image of volume ${rec.name} is attached on node ${holder}, and one host at a time attaches it; do it on ${holder} (ferry there), or stop the containers that use it`,
          err.details,
        );
      }
    }
    try {
      return await fn();
    } finally {
      if (!had && Object.keys(rec.mounts).length === 0) {
        await cluster.release(rec.pool, rec.name).catch((err: unknown) => this.c.log.warn({ volume: rec.name, err: errorMessage(err) }, 'could not give back the rwo lock taken for ' + what));
      }
    }
  }

  /**
   * The other half, for a Mount that has just published this node's attachment: the record must still be the
   * one mounted, and no other live node may have marked a change of it in progress (it may have looked at the
   * attachments before ours landed). Undefined when the Mount may go on; a share that cannot be read now is
   * no evidence of a change.
   */
  async changedUnderMount(rec: VolumeRecord): Promise<FerryError | undefined> {
    const cluster = this.c.cluster!;
    let cur: SharedRecord | undefined;
    let mark: Awaited<ReturnType<Cluster['changeElsewhere']>>;
    try {
      // (both looked at together: one round trip to the share; each is read after the attachment was published)
      const store = await cluster.store(rec.pool);
      [cur, mark] = await Promise.all([store.read(rec.name), cluster.changeElsewhere(rec.pool, rec)]);
    } catch (err) {
      this.c.log.warn({ volume: rec.name, err: errorMessage(err) }, 'could not look for a removal on another node after publishing the attachment');
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
}
