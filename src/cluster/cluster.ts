import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Pool } from '../pools/pool.js';
import { FerryError, errorMessage } from '../util/errors.js';
import type { Quarantine } from '../util/quarantine.js';
import { SharedStore, type Attachment, type NodeBeat, type SharedRecord } from './shared-store.js';

export interface ClusterOptions {
  node: string;
  version: string;
  heartbeatMs: number;
  /** A node whose heartbeat is older than this is dead: its attachments expire, its rwo volumes can be taken over. */
  nodeTimeoutMs: number;
  log: Logger;
  now?: () => number;
  /** Where unreadable heartbeats and attachments are reported. */
  quarantine?: Quarantine;
}

export interface NodeStatus extends NodeBeat {
  alive: boolean;
  /** Shared pools in which the node beats. */
  pools: string[];
}

export interface AttachmentStatus extends Attachment {
  pool: string;
  /** False when the node's heartbeat expired: the attachment no longer counts. */
  alive: boolean;
}

/**
 * What the hosts of a cluster know of each other, through the shared pools they all mount: heartbeats,
 * attachments (which node uses which volume) and the holders of one-host-at-a-time (rwo) volumes.
 * There is no server and no election: every fact is a file in a shared pool (see shared-store.ts).
 */
export class Cluster {
  private readonly stores = new Map<string, SharedStore>();
  private readonly ready = new Set<string>();
  private readonly startedAt: string;
  private readonly now: () => number;
  /** The token of each rwo lock this node holds, by `pool/volume`. */
  private readonly held = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** Called after each heartbeat (the volume service refreshes its attachments). */
  onTick: (() => Promise<void>) | undefined;

  constructor(
    private readonly pools: Pool[],
    private readonly opts: ClusterOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.startedAt = new Date(this.now()).toISOString();
    for (const p of pools) if (p.shared) this.stores.set(p.name, new SharedStore(p.root, opts.quarantine));
  }

  get node(): string {
    return this.opts.node;
  }

  /** True when this node serves at least one shared pool. */
  get active(): boolean {
    return this.stores.size > 0;
  }

  get settings(): { heartbeatMs: number; nodeTimeoutMs: number } {
    return { heartbeatMs: this.opts.heartbeatMs, nodeTimeoutMs: this.opts.nodeTimeoutMs };
  }

  /** The store of a shared pool, while its filesystem is there (throws `unavailable` otherwise). */
  async store(pool: string): Promise<SharedStore> {
    const s = this.stores.get(pool);
    if (!s) throw new Error(`pool ${pool} is not shared`);
    // one stat of the pool's marker: under a dead mount, "no such file" means nothing
    await this.poolOf(pool).checkAvailable();
    if (!this.ready.has(pool)) {
      await s.init();
      this.ready.add(pool);
      await this.beatIn(pool, s);
    }
    return s;
  }

  isShared(pool: string): boolean {
    return this.stores.has(pool);
  }

  sharedPools(): string[] {
    return [...this.stores.keys()];
  }

  private poolOf(name: string): Pool {
    return this.pools.find((p) => p.name === name)!;
  }

  async start(): Promise<void> {
    if (!this.active) return;
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.opts.heartbeatMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
  }

  /** One heartbeat: check (and re-mount) every shared pool, beat in each, let the service refresh attachments. */
  tick(): Promise<void> {
    return (this.ticking ??= (async () => {
      try {
        for (const name of this.stores.keys()) {
          try {
            await this.beatIn(name, await this.store(name));
          } catch (err) {
            this.ready.delete(name);
            this.opts.log.warn({ pool: name, err: errorMessage(err) }, 'shared pool unavailable');
          }
        }
        await this.onTick?.().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not refresh attachments'));
      } finally {
        this.ticking = undefined;
      }
    })());
  }

  private beatIn(pool: string, s: SharedStore): Promise<void> {
    return s
      .beat({ node: this.node, pid: process.pid, version: this.opts.version, startedAt: this.startedAt, lastSeen: new Date(this.now()).toISOString(), intervalMs: this.opts.heartbeatMs })
      .catch((err) => {
        this.ready.delete(pool);
        throw err;
      });
  }

  private isAlive(b: NodeBeat | undefined): boolean {
    return b !== undefined && this.now() - Date.parse(b.lastSeen) <= this.opts.nodeTimeoutMs;
  }

  /** Every node seen in any shared pool, with its newest heartbeat. */
  async nodes(): Promise<NodeStatus[]> {
    const byNode = new Map<string, NodeStatus>();
    for (const pool of this.stores.keys()) {
      let beats: NodeBeat[];
      try {
        beats = await (await this.store(pool)).nodes();
      } catch {
        continue;
      }
      for (const b of beats) {
        const cur = byNode.get(b.node);
        if (!cur || cur.lastSeen < b.lastSeen) byNode.set(b.node, { ...b, alive: this.isAlive(b), pools: [...(cur?.pools ?? []), pool] });
        else cur.pools.push(pool);
      }
    }
    return [...byNode.values()].sort((a, b) => a.node.localeCompare(b.node));
  }

  /** Attachments of one volume (or of all) in a pool, each marked alive or expired. */
  async attachments(pool: string, volume?: string): Promise<AttachmentStatus[]> {
    const s = await this.store(pool);
    const beats = new Map((await s.nodes()).map((b) => [b.node, b]));
    return (await s.attachments(volume)).map((a) => ({ ...a, pool, alive: a.node === this.node || this.isAlive(beats.get(a.node)) }));
  }

  /** Attachments on other nodes that are alive: what makes a volume "in use elsewhere". */
  async usedElsewhere(pool: string, rec: SharedRecord): Promise<AttachmentStatus[]> {
    return (await this.attachments(pool, rec.name)).filter((a) => a.node !== this.node && a.alive && a.createdAt === rec.createdAt);
  }

  /**
   * Hold an rwo volume for this node. Refused (`in_use`, naming the holder and its containers) while
   * another live node holds it; a dead holder's lock (heartbeat expired) is broken and taken over.
   */
  async acquire(pool: string, rec: SharedRecord): Promise<void> {
    const s = await this.store(pool);
    const key = `${pool}/${rec.name}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const token = randomBytes(8).toString('hex');
      if (await s.tryLock({ node: this.node, volume: rec.name, createdAt: rec.createdAt, since: new Date(this.now()).toISOString(), token })) {
        this.held.set(key, token);
        return;
      }
      const cur = await s.readLock(rec.name);
      if (!cur) continue; // released meanwhile
      if (cur.node === this.node && cur.createdAt === rec.createdAt) {
        this.held.set(key, cur.token); // ours, from before a restart of ferryd
        return;
      }
      const holderBeat = (await s.nodes()).find((b) => b.node === cur.node);
      if (cur.createdAt === rec.createdAt && cur.node !== this.node && this.isAlive(holderBeat)) {
        const att = (await s.attachments(rec.name)).find((a) => a.node === cur.node);
        const who = att?.containers.length ? `containers ${att.containers.join(', ')}` : `${att?.mountIds.length ?? 'some'} mount(s)`;
        throw new FerryError(
          'in_use',
          `volume ${rec.name} is rwo (one host at a time) and node ${cur.node} holds it (${who}, since ${cur.since}); ` +
            `stop those containers on ${cur.node} first; if ${cur.node} is dead, it is taken over ${Math.round(this.opts.nodeTimeoutMs / 1000)}s after its last heartbeat (${holderBeat?.lastSeen ?? 'never'})`,
          { holder: cur.node, containers: att?.containers ?? [], since: cur.since },
        );
      }
      // a dead holder, an older incarnation of the name, or a stale lock of this node's own past
      this.opts.log.warn({ volume: rec.name, holder: cur.node, lastSeen: holderBeat?.lastSeen ?? null }, 'taking over an rwo volume from a node that is gone');
      await s.breakLock(rec.name, cur.token);
    }
    throw new FerryError('unavailable', `could not take the rwo lock of ${rec.name}: other nodes keep racing for it; try again`);
  }

  /** Does this node still hold the rwo lock? (It can have been taken over while this node was cut off.) */
  async stillHeld(pool: string, volume: string): Promise<boolean> {
    const token = this.held.get(`${pool}/${volume}`);
    if (!token) return false;
    const cur = await (await this.store(pool)).readLock(volume);
    return cur?.token === token;
  }

  async release(pool: string, volume: string): Promise<void> {
    const key = `${pool}/${volume}`;
    const token = this.held.get(key);
    this.held.delete(key);
    if (token) await (await this.store(pool)).breakLock(volume, token);
  }
}
