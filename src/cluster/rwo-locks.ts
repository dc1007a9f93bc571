/** rwo volumes: the lock this node holds on each, taken at its first Mount, taken over from a node that is gone. */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FerryError } from '../util/errors.js';
import { runFenceCommand } from '../fence/hook.js';
import type { NodeBeat, SharedRecord, SharedStore } from './shared-store.js';

/** What the locks need of the cluster node. */
export interface RwoContext {
  readonly node: string;
  readonly now: () => number;
  readonly log: Logger;
  readonly nodeTimeoutMs: number;
  readonly fenceCommand?: string;
  store(pool: string): Promise<SharedStore>;
  isAlive(beat: NodeBeat | undefined): boolean;
}

/**
 * How long a takeover waits before it looks again whether the lock it took is still its own. Several nodes
 * may take over a dead node's volume at once, and a share's client may answer from its caches for about a
 * second (GlusterFS's defaults: the kernel's FUSE names and attributes, quick-read's file contents): a node
 * that still saw the dead node's lock there broke the lock another node had just taken, and took it too; both
 * mounted and wrote (seen with three hosts on GlusterFS, 3 runs in 6). After longer than those caches keep
 * anything, the lock's file names one node, and only that node goes on.
 */
export const TAKEOVER_SETTLE_MS = 2500;

export class RwoLocks {
  /** The token of each rwo lock this node holds, by `pool/volume`. */
  readonly held = new Map<string, string>();

  /** `afterAcquire`: renew the local fence lease (it names the volumes held); it must not throw. */
  constructor(
    private readonly c: RwoContext,
    private readonly afterAcquire: () => Promise<void>,
    private readonly settleMs = TAKEOVER_SETTLE_MS,
  ) {}

  /**
   * Hold an rwo volume for this node. Refused (`in_use`, naming the holder and its containers) while
   * another live node holds it; a dead holder's lock (heartbeat expired) is broken and taken over.
   */
  async acquire(pool: string, rec: SharedRecord): Promise<void> {
    const s = await this.c.store(pool);
    const key = `${pool}/${rec.name}`;
    let tookOver = false;
    for (let attempt = 0; attempt < 5; attempt++) {
      const token = randomBytes(8).toString('hex');
      if (await s.tryLock({ node: this.c.node, volume: rec.name, createdAt: rec.createdAt, since: new Date(this.c.now()).toISOString(), token })) {
        if (tookOver) {
          await new Promise((r) => setTimeout(r, this.settleMs));
          const now = await s.readLock(rec.name);
          if (now?.token !== token) {
            // another node raced for it and holds it now: the next attempt names it (or takes it over if it is gone too)
            this.c.log.warn({ volume: rec.name, holder: now?.node ?? null }, 'an rwo takeover raced with another node, which holds the volume now; not mounted here');
            continue;
          }
        }
        this.held.set(key, token);
        await this.afterAcquire();
        return;
      }
      const cur = await s.readLock(rec.name);
      if (!cur) continue; // released meanwhile
      if (cur.node === this.c.node && cur.createdAt === rec.createdAt) {
        this.held.set(key, cur.token); // ours, from before a restart of ferryd
        await this.afterAcquire();
        return;
      }
      const holderBeat = (await s.beatsFor([cur.node])).get(cur.node);
      if (cur.createdAt === rec.createdAt && cur.node !== this.c.node && this.c.isAlive(holderBeat)) {
        const att = (await s.attachments(rec.name)).find((a) => a.node === cur.node);
        const who = att?.containers.length ? `containers ${att.containers.join(', ')}` : `${att?.mountIds.length ?? 'some'} mount(s)`;
        throw new FerryError(
          'in_use',
          `volume ${rec.name} is rwo (one host at a time) and node ${cur.node} holds it (${who}, since ${cur.since}); ` +
            `stop those containers on ${cur.node} first; if ${cur.node} is dead, it is taken over ${Math.round(this.c.nodeTimeoutMs / 1000)}s after its last heartbeat (${holderBeat?.lastSeen ?? 'never'})`,
          { holder: cur.node, containers: att?.containers ?? [], since: cur.since },
        );
      }
      // a dead holder, an older incarnation of the name, or a stale lock of this node's own past
      this.c.log.warn({ volume: rec.name, holder: cur.node, lastSeen: holderBeat?.lastSeen ?? null }, 'taking over an rwo volume from a node that is gone');
      if (this.c.fenceCommand && cur.node !== this.c.node) await runFenceCommand(this.c.fenceCommand, { node: cur.node, pool, volume: rec.name, lastSeen: holderBeat?.lastSeen }, this.c.log);
      await s.breakLock(rec.name, cur.token);
      tookOver = true;
    }
    throw new FerryError('unavailable', `could not take the rwo lock of ${rec.name}: other nodes keep racing for it; try again`);
  }


  /** Does this node still hold the rwo lock? (It can have been taken over while this node was cut off.) */
  async stillHeld(pool: string, volume: string): Promise<boolean> {
    const token = this.held.get(`${pool}/${volume}`);
    if (!token) return false;
    const cur = await (await this.c.store(pool)).readLock(volume);
    return cur?.token === token;
  }


  async release(pool: string, volume: string): Promise<void> {
    const key = `${pool}/${volume}`;
    const token = this.held.get(key);
    this.held.delete(key);
    if (!token) return;
    try {
      await (await this.c.store(pool)).breakLock(volume, token);
    } catch (err) {
      // (the share did not answer: kept, the lock would bar every other node until this one mounts the volume again)
      this.releasing.set(key, token);
      throw err;
    }
  }

  /** Locks whose release failed, by `pool/volume`: given back by retryReleases. */
  private readonly releasing = new Map<string, string>();

  /** The locks whose release failed, to give back with retryRelease. */
  pendingReleases(): Array<{ pool: string; volume: string }> {
    return [...this.releasing.keys()].map((key) => {
      const [pool, volume] = key.split('/') as [string, string];
      return { pool, volume };
    });
  }

  /**
   * Heartbeat work, under the volume's lock (no Mount of it meanwhile): give back a lock whose release failed;
   * one taken again here since (a Mount, with the same lock) is kept. A share still down: tried at the next one.
   */
  async retryRelease(pool: string, volume: string): Promise<void> {
    const key = `${pool}/${volume}`;
    const token = this.releasing.get(key);
    if (token === undefined) return;
    if (this.held.get(key) === token) {
      this.releasing.delete(key);
      return;
    }
    await (await this.c.store(pool)).breakLock(volume, token);
    this.releasing.delete(key);
    this.c.log.info({ volume, pool }, 'gave back an rwo lock whose release had failed');
  }
}
