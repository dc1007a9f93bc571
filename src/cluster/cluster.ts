/** A node in shared pools: its heartbeat and other nodes' liveness, and what it publishes there; rwo locks, change marks and fencing are its parts. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Pool } from '../pools/pool.js';
import { errorMessage } from '../util/errors.js';
import { SharedStore, type Attachment, type NodeBeat, type NodeReferences, type SharedRecord, type ChangeMark, type NodeUsage } from './shared-store.js';
import { claimConflict, isClaimConflict, judgeClaim, machineId, watchClaim } from './node-claim.js';
import type { StateWarnings } from '../util/state-warnings.js';
import type { Quarantine } from '../util/quarantine.js';
import { LeaseKeeper } from '../fence/lease-keeper.js';
import { RwoLocks } from './rwo-locks.js';
import { ChangeMarks } from './change-marks.js';
import { FenceWatch } from './fence-watch.js';
import { BeatWatch } from './beat-watch.js';

export interface ClusterOptions {
  node: string;
  version: string;
  heartbeatMs: number;
  /** A node whose heartbeat is older than this is dead: its attachments expire, its rwo volumes can be taken over. */
  nodeTimeoutMs: number;
  log: Logger;
  now?: () => number;
  /** The data dir whose lock this process holds (named in heartbeats; see node-claim.ts). */
  dataDir?: string;
  /** Where a second ferryd beating under this node's name is reported. */
  warnings?: StateWarnings;
  /** Where unreadable heartbeats and attachments are reported. */
  quarantine?: Quarantine;
  /** Writers of this node's rwo volumes are killed (by `ferry fence`) this long after the last heartbeat that reached their pool; < nodeTimeoutMs. */
  fenceMs?: number;
  /** The operator's fencing hook, run before taking an rwo volume over from a node that is gone (see hook.ts). */
  fenceCommand?: string;
  /** The space of this node's own pools, published in its heartbeat. */
  localCapacity?: () => NonNullable<NodeBeat['capacity']>;
}

/** How long a node that stopped beating still counts as using what it had mounted, for removals and restores (Cluster.usedElsewhere). */
export const DEAD_NODE_HOLD_MS = 10 * 60_000;

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
  /** Per shared pool: liveness from listings of its heartbeat directory (beat-watch.ts), looked at every heartbeat. */
  private readonly watches = new Map<string, BeatWatch>();
  private readonly ready = new Set<string>();
  private readonly startedAt: string;
  private readonly now: () => number;
  /** Random per process: tells two ferryd claiming one node name apart. */
  readonly instance = randomBytes(8).toString('hex');
  private readonly machine = machineId();
  /** Pools where this process has written its heartbeat since the pool became ready. */
  private readonly beaten = new Set<string>();
  /** The nodes of each pool's last listing of heartbeats (nodes()). */
  private readonly listedNodes = new Map<string, Set<string>>();
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
    for (const p of pools) {
      if (!p.shared) continue;
      const s = new SharedStore(p.root, opts.quarantine, p.shareFs);
      this.stores.set(p.name, s);
      this.watches.set(p.name, new BeatWatch(s, opts.nodeTimeoutMs, this.now));
    }
    const lease = opts.dataDir && opts.fenceMs && this.stores.size > 0 ? new LeaseKeeper(opts.dataDir, { node: opts.node, fenceMs: opts.fenceMs, heartbeatMs: opts.heartbeatMs }) : undefined;
    const self = {
      node: opts.node,
      instance: this.instance,
      now: this.now,
      log: opts.log,
      nodeTimeoutMs: opts.nodeTimeoutMs,
      ...(opts.fenceCommand ? { fenceCommand: opts.fenceCommand } : {}),
      store: (pool: string) => this.store(pool),
      isAlive: (b: NodeBeat | undefined) => this.isAlive(b),
    };
    this.rwo = new RwoLocks(self, () => this.renewLease());
    this.changes = new ChangeMarks(self);
    this.fence = new FenceWatch(
      {
        ...self,
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
        ...(opts.warnings ? { warnings: opts.warnings } : {}),
        held: this.rwo.held,
        readyStore: (pool) => (this.ready.has(pool) ? this.stores.get(pool) : undefined),
        mountpoint: (pool, volume) => this.poolOf(pool).mountpoint(volume),
      },
      lease,
    );
  }

  private readonly rwo: RwoLocks;
  private readonly changes: ChangeMarks;
  private readonly fence: FenceWatch;

  private renewLease(): Promise<void> {
    return this.fence.writeLease().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not renew the local fence lease'));
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
      await this.claim(pool, s);
      this.ready.add(pool);
      await this.beatIn(pool, s);
    }
    return s;
  }

  /**
   * Before the first heartbeat in a pool: refuse (throws, see node-claim.ts) when another ferryd that is
   * alive beats under this node's name; a fresh beat of another instance is watched for about one interval.
   */
  private async claim(pool: string, s: SharedStore): Promise<void> {
    const theirs = await s.beatOf(this.node);
    const me = { node: this.node, instance: this.instance, ...(this.opts.dataDir ? { dataDir: this.opts.dataDir } : {}), ...(this.machine ? { machine: this.machine } : {}) };
    const verdict = judgeClaim(theirs, me, this.now(), this.opts.nodeTimeoutMs, this.opts.dataDir !== undefined);
    if (verdict.free || !theirs) {
      if (theirs && theirs.instance !== this.instance) this.opts.log.info({ pool }, `node name ${this.node} is free in pool ${pool}: ${verdict.free ? verdict.why : ''}`);
      return;
    }
    this.opts.log.info({ pool, other: { pid: theirs.pid, host: theirs.host, lastSeen: theirs.lastSeen } }, 'another ferryd beat recently under this node name: watching whether it still does');
    const why = await watchClaim(() => s.beatOf(this.node), theirs, pool, this.opts.heartbeatMs);
    this.opts.log.warn({ pool, other: { pid: theirs.pid, host: theirs.host } }, `taking over node name ${this.node}: ${why}`);
  }

  /** At start, before anything else uses the shared pools: refuse when another live ferryd is this node. */
  async claimAll(): Promise<void> {
    for (const name of this.stores.keys()) {
      try {
        await this.store(name);
      } catch (err) {
        if (isClaimConflict(err)) throw err;
        // the pool is down: its claim is checked when it comes up
      }
    }
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

  /** Stop beating; mark this node's heartbeats as stopped, so that the next ferryd of this node starts without waiting. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
    for (const pool of this.ready) {
      const s = this.stores.get(pool)!;
      const cur = await s.beatOf(this.node);
      if (cur?.instance !== this.instance) continue; // never mark another ferryd's beat
      await s.beat({ ...this.beatNow(), stoppedAt: new Date(this.now()).toISOString() }).catch((err) => this.opts.log.warn({ pool, err: errorMessage(err) }, 'could not mark the heartbeat as stopped'));
    }
  }

  /** One heartbeat: check (and re-mount) every shared pool, beat in each, let the service refresh attachments. */
  tick(): Promise<void> {
    return (this.ticking ??= (async () => {
      try {
        for (const name of this.stores.keys()) {
          try {
            await this.beatIn(name, await this.store(name));
            // (a look every interval: the watch's evidence of a live node is never older than one interval)
            await this.watches.get(name)!.alive().catch((err) => this.opts.log.debug({ pool: name, err: errorMessage(err) }, 'could not list the heartbeats'));
          } catch (err) {
            this.ready.delete(name);
            this.beaten.delete(name);
            this.opts.log.warn({ pool: name, err: errorMessage(err) }, 'shared pool unavailable');
            if (isClaimConflict(err)) this.opts.warnings?.add(`node-claim:${name}`, { code: 'node_claimed', message: `pool ${name} is not used: ${err.message}` });
          }
        }
        await this.changes.retryUnended();
        await this.fence.reconcileFences().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not reconcile fenced volumes'));
        await this.renewLease();
        await this.onTick?.().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not refresh attachments'));
      } finally {
        this.ticking = undefined;
      }
    })());
  }

  private beatNow(): NodeBeat {
    return {
      node: this.node,
      pid: process.pid,
      version: this.opts.version,
      startedAt: this.startedAt,
      lastSeen: new Date(this.now()).toISOString(),
      intervalMs: this.opts.heartbeatMs,
      instance: this.instance,
      host: hostname(),
      ...(this.opts.dataDir ? { dataDir: this.opts.dataDir } : {}),
      ...(this.machine ? { machine: this.machine } : {}),
      ...this.capacityField(),
    };
  }

  private capacityField(): Pick<NodeBeat, 'capacity'> {
    const c = this.opts.localCapacity?.();
    return c && Object.keys(c).length > 0 ? { capacity: c } : {};
  }

  private async beatIn(pool: string, s: SharedStore): Promise<void> {
    try {
      // our beat was the last one written here: another instance's means a second ferryd with this name
      const cur = this.beaten.has(pool) ? await s.beatOf(this.node) : undefined;
      if (cur && cur.instance !== this.instance && !cur.stoppedAt) {
        const err = claimConflict(pool, cur);
        this.opts.log.error({ pool, other: cur }, err.message);
        this.opts.warnings?.add(`node-claim:${pool}`, { code: 'node_claimed', file: s.beatPath(this.node), message: `${err.message} (both write heartbeats as node ${this.node}: stop one of them)` });
      }
      const beat = this.beatNow();
      await s.beat(beat);
      this.beaten.add(pool);
      // the stamp, not the time the write ended: others count nodeTimeout from it
      this.fence.lease?.beatReached(pool, Date.parse(beat.lastSeen));
    } catch (err) {
      this.ready.delete(pool);
      this.beaten.delete(pool);
      throw err;
    }
  }

  private isAlive(b: NodeBeat | undefined): boolean {
    return b !== undefined && this.now() - Date.parse(b.lastSeen) <= this.opts.nodeTimeoutMs;
  }

  /**
   * Every node seen in any shared pool, with its newest heartbeat. A node the last listing of a pool had and
   * this one lacks is looked up directly (SharedStore.beatsFor): a status must not lose a live node for a moment.
   */
  async nodes(): Promise<NodeStatus[]> {
    const byNode = new Map<string, NodeStatus>();
    for (const pool of this.stores.keys()) {
      let beats: NodeBeat[];
      try {
        const s = await this.store(pool);
        beats = await s.nodes();
        const before = this.listedNodes.get(pool);
        if (before && [...before].some((n) => !beats.some((b) => b.node === n))) beats = [...(await s.beatsFor(before, beats)).values()];
        this.listedNodes.set(pool, new Set(beats.map((b) => b.node)));
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

  /**
   * Attachments of one volume (or of all) in a pool, each marked alive or expired. `watched`: liveness from the
   * heartbeat watch's last look (at most one interval old; for listings and schedules), not from reading every
   * heartbeat (what removals and Mounts decide on).
   */
  async attachments(pool: string, volume?: string, watched = false): Promise<AttachmentStatus[]> {
    const s = await this.store(pool);
    if (watched) {
      const live = await this.watches.get(pool)!.alive(this.opts.heartbeatMs);
      return (await (volume ? s.attachments(volume) : s.attachmentsListed())).map((a) => ({ ...a, pool, alive: a.node === this.node || live.has(a.node) }));
    }
    const atts = await s.attachments(volume);
    const beats = await s.beatsFor(atts.filter((a) => a.node !== this.node).map((a) => a.node));
    return atts.map((a) => ({ ...a, pool, alive: a.node === this.node || this.isAlive(beats.get(a.node)) }));
  }

  /**
   * The names of the nodes alive in any shared pool (this one included while it beats), from the heartbeat watch:
   * no heartbeat is read while its node beats (see beat-watch.ts). A pool that cannot be read adds nobody.
   */
  async liveNodes(): Promise<string[]> {
    const out = new Set<string>();
    for (const [pool, w] of this.watches) {
      try {
        await this.store(pool);
        for (const n of await w.alive(this.opts.heartbeatMs)) out.add(n);
      } catch {
        continue;
      }
    }
    return [...out].sort();
  }

  /**
   * Attachments on other nodes: what makes a volume "in use elsewhere" for a removal or a restore. Those of live
   * nodes, and those of nodes that stopped beating less than DEAD_NODE_HOLD_MS ago (`alive: false`, with the
   * node's `lastSeen`): a node's ferryd may be down while its containers run on and write (nothing fences an rwx
   * volume), so its last word counts for a while.
   */
  async usedElsewhere(pool: string, rec: SharedRecord): Promise<Array<AttachmentStatus & { lastSeen?: string }>> {
    const s = await this.store(pool);
    const atts = (await s.attachments(rec.name)).filter((a) => a.node !== this.node && a.createdAt === rec.createdAt);
    const beats = await s.beatsFor(atts.map((a) => a.node));
    const now = this.now();
    return atts.flatMap((a): Array<AttachmentStatus & { lastSeen?: string }> => {
      const beat = beats.get(a.node);
      if (this.isAlive(beat)) return [{ ...a, pool, alive: true }];
      return beat && now - Date.parse(beat.lastSeen) < DEAD_NODE_HOLD_MS ? [{ ...a, pool, alive: false, lastSeen: beat.lastSeen }] : [];
    });
  }

  /** Publish which volumes of a pool containers on this node's host reference (heartbeat work). */
  async publishReferences(pool: string, r: Omit<NodeReferences, 'node'>): Promise<void> {
    await (await this.store(pool)).publishReferences({ node: this.node, ...r });
  }

  /** Publish what this node measured of the shared volumes of a pool it looks after (usage pass). */
  async publishUsage(pool: string, volumes: NodeUsage['volumes']): Promise<void> {
    await (await this.store(pool)).publishUsage({ node: this.node, updatedAt: new Date().toISOString(), volumes });
  }

  /** What the other nodes (alive or not: their last figures are still the best known) measured in a pool. */
  async usageElsewhere(pool: string): Promise<NodeUsage[]> {
    return (await (await this.store(pool)).usages(this.node)).filter((u) => u.node !== this.node);
  }

  /**
   * What the other live nodes report of a volume: the containers on their hosts that reference it, and the
   * nodes that could not ask their Docker engine (their last known list is used, and they are named).
   */
  async referencesElsewhere(pool: string, volume: string): Promise<Array<{ node: string; containers: string[]; docker: NodeReferences['docker']; reason?: string; updatedAt: string }>> {
    const s = await this.store(pool);
    const refs = await s.references();
    const beats = await s.beatsFor(refs.filter((r) => r.node !== this.node).map((r) => r.node));
    return refs
      .filter((r) => r.node !== this.node && this.isAlive(beats.get(r.node)))
      .map((r) => ({ node: r.node, containers: r.volumes[volume] ?? [], docker: r.docker, ...(r.reason ? { reason: r.reason } : {}), updatedAt: r.updatedAt }))
      .filter((r) => r.containers.length > 0 || r.docker === 'unreachable');
  }

  // ---- rwo locks (rwo-locks.ts) and change marks (change-marks.ts) ---------------------------------------

  /**
   * Hold an rwo volume for this node. Refused (`in_use`, naming the holder and its containers) while
   * another live node holds it; a dead holder's lock (heartbeat expired) is broken and taken over.
   */
  acquire(pool: string, rec: SharedRecord): Promise<void> {
    return this.rwo.acquire(pool, rec);
  }

  /** Does this node still hold the rwo lock? (It can have been taken over while this node was cut off.) */
  stillHeld(pool: string, volume: string): Promise<boolean> {
    return this.rwo.stillHeld(pool, volume);
  }

  release(pool: string, volume: string): Promise<void> {
    return this.rwo.release(pool, volume);
  }

  /** The rwo locks whose release failed (the share did not answer then): give each back with retryRelease, under the volume's lock. */
  pendingReleases(): Array<{ pool: string; volume: string }> {
    return this.rwo.pendingReleases();
  }

  retryRelease(pool: string, volume: string): Promise<void> {
    return this.rwo.retryRelease(pool, volume);
  }

  /** Mark a change that needs the volume unmounted everywhere as in progress here (see ChangeMarks). */
  beginChange(pool: string, rec: SharedRecord, what: string): Promise<() => Promise<void>> {
    return this.changes.beginChange(pool, rec, what);
  }

  /** A change of this incarnation of the volume that another live ferryd has in progress, if any. */
  changeElsewhere(pool: string, rec: SharedRecord): Promise<ChangeMark | undefined> {
    return this.changes.changeElsewhere(pool, rec);
  }
}
