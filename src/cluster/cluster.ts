/** A node in shared pools: its heartbeat, other nodes' liveness, attachments, rwo locks and takeovers, fencing deadlines. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Pool } from '../pools/pool.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { SharedStore, type Attachment, type NodeBeat, type NodeReferences, type SharedRecord, type ChangeMark, type NodeUsage } from './shared-store.js';
import { claimConflict, isClaimConflict, judgeClaim, machineId, watchClaim } from './node-claim.js';
import type { StateWarnings } from '../util/state-warnings.js';
import type { Quarantine } from '../util/quarantine.js';
import { LeaseKeeper } from '../fence/lease-keeper.js';
import { runFenceCommand } from '../fence/hook.js';
import { AGENT_GONE_MS, agentBeatPath, readAgentBeat } from '../fence/lease.js';

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
  /** Random per process: tells two ferryd claiming one node name apart. */
  readonly instance = randomBytes(8).toString('hex');
  private readonly machine = machineId();
  /** Pools where this process has written its heartbeat since the pool became ready. */
  private readonly beaten = new Set<string>();
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
    for (const p of pools) if (p.shared) this.stores.set(p.name, new SharedStore(p.root, opts.quarantine, p.shareFs));
    if (opts.dataDir && opts.fenceMs && this.stores.size > 0) this.lease = new LeaseKeeper(opts.dataDir, { node: opts.node, fenceMs: opts.fenceMs, heartbeatMs: opts.heartbeatMs });
  }

  /** The local lease the fencing agent watches (src/fence/); undefined without shared pools or a data dir. */
  private readonly lease: LeaseKeeper | undefined;

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
          } catch (err) {
            this.ready.delete(name);
            this.beaten.delete(name);
            this.opts.log.warn({ pool: name, err: errorMessage(err) }, 'shared pool unavailable');
            if (isClaimConflict(err)) this.opts.warnings?.add(`node-claim:${name}`, { code: 'node_claimed', message: `pool ${name} is not used: ${err.message}` });
          }
        }
        for (const [key, token] of [...this.unendedChanges]) {
          const i = key.indexOf('/');
          await this.endChange(key.slice(0, i), key.slice(i + 1), token);
        }
        await this.reconcileFences().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not reconcile fenced volumes'));
        await this.writeLease().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not renew the local fence lease'));
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
      this.lease?.beatReached(pool, Date.parse(beat.lastSeen));
    } catch (err) {
      this.ready.delete(pool);
      this.beaten.delete(pool);
      throw err;
    }
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
    return (await (await this.store(pool)).usages()).filter((u) => u.node !== this.node);
  }

  /**
   * What the other live nodes report of a volume: the containers on their hosts that reference it, and the
   * nodes that could not ask their Docker engine (their last known list is used, and they are named).
   */
  async referencesElsewhere(pool: string, volume: string): Promise<Array<{ node: string; containers: string[]; docker: NodeReferences['docker']; reason?: string; updatedAt: string }>> {
    const s = await this.store(pool);
    const beats = new Map((await s.nodes()).map((b) => [b.node, b]));
    return (await s.references())
      .filter((r) => r.node !== this.node && this.isAlive(beats.get(r.node)))
      .map((r) => ({ node: r.node, containers: r.volumes[volume] ?? [], docker: r.docker, ...(r.reason ? { reason: r.reason } : {}), updatedAt: r.updatedAt }))
      .filter((r) => r.containers.length > 0 || r.docker === 'unreachable');
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
        await this.writeLease().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not renew the local fence lease'));
        return;
      }
      const cur = await s.readLock(rec.name);
      if (!cur) continue; // released meanwhile
      if (cur.node === this.node && cur.createdAt === rec.createdAt) {
        this.held.set(key, cur.token); // ours, from before a restart of ferryd
        await this.writeLease().catch((err) => this.opts.log.warn({ err: errorMessage(err) }, 'could not renew the local fence lease'));
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
      if (this.opts.fenceCommand && cur.node !== this.node) await runFenceCommand(this.opts.fenceCommand, { node: cur.node, pool, volume: rec.name, lastSeen: holderBeat?.lastSeen }, this.opts.log);
      await s.breakLock(rec.name, cur.token);
    }
    throw new FerryError('unavailable', `could not take the rwo lock of ${rec.name}: other nodes keep racing for it; try again`);
  }

  /**
   * Mark a change of a shared volume that needs it unmounted everywhere (remove, restore, reset) as in
   * progress on this node, before the caller's last look at the attachments (the other half of the
   * handshake is `changeElsewhere`, which a Mount reads after publishing its attachment). Refused (`in_use`)
   * while another live ferryd has one in progress; a mark left by a ferryd that is gone is broken. Returns
   * the function that ends the change (a mark it cannot remove now is retried on each heartbeat).
   */
  async beginChange(pool: string, rec: SharedRecord, what: string): Promise<() => Promise<void>> {
    const s = await this.store(pool);
    for (let attempt = 0; attempt < 5; attempt++) {
      const token = randomBytes(8).toString('hex');
      const mark: ChangeMark = { node: this.node, instance: this.instance, volume: rec.name, createdAt: rec.createdAt, what, since: new Date(this.now()).toISOString(), token };
      if (await s.tryChange(mark)) return () => this.endChange(pool, rec.name, token);
      const cur = await s.readChange(rec.name);
      if (!cur) continue; // ended meanwhile
      if (await this.markCounts(s, cur)) {
        throw new FerryError('in_use', `volume ${rec.name} is busy: node ${cur.node} is about to ${cur.what} (since ${cur.since}); try again when that is done`, { node: cur.node });
      }
      this.opts.log.warn({ volume: rec.name, mark: cur }, 'dropping the mark of a change that a ferryd which is gone left unfinished');
      await s.endChange(rec.name, cur.token);
    }
    throw new FerryError('unavailable', `could not mark the change of ${rec.name}: other nodes keep racing for it; try again`);
  }

  /** A change of this incarnation of the volume that another live ferryd has in progress, if any. */
  async changeElsewhere(pool: string, rec: SharedRecord): Promise<ChangeMark | undefined> {
    const s = await this.store(pool);
    const cur = await s.readChange(rec.name);
    if (!cur || cur.createdAt !== rec.createdAt || (cur.node === this.node && cur.instance === this.instance)) return undefined;
    return (await this.markCounts(s, cur)) ? cur : undefined;
  }

  /** A mark counts while the ferryd that wrote it beats (same node, same instance, heartbeat not expired). */
  private async markCounts(s: SharedStore, mark: ChangeMark): Promise<boolean> {
    if (mark.node === this.node && mark.instance === this.instance) return true;
    const beat = await s.beatOf(mark.node);
    return this.isAlive(beat) && beat!.instance === mark.instance && !beat!.stoppedAt;
  }

  /** Change marks this node could not remove yet (share away): `pool/volume` → token; retried each heartbeat. */
  private readonly unendedChanges = new Map<string, string>();

  private async endChange(pool: string, volume: string, token: string): Promise<void> {
    const key = `${pool}/${volume}`;
    try {
      await (await this.store(pool)).endChange(volume, token);
      this.unendedChanges.delete(key);
    } catch (err) {
      this.unendedChanges.set(key, token);
      this.opts.log.warn({ pool, volume, err: errorMessage(err) }, 'could not remove the mark of a finished change; retrying on the next heartbeat');
    }
  }

  /** Does this node still hold the rwo lock? (It can have been taken over while this node was cut off.) */
  async stillHeld(pool: string, volume: string): Promise<boolean> {
    const token = this.held.get(`${pool}/${volume}`);
    if (!token) return false;
    const cur = await (await this.store(pool)).readLock(volume);
    return cur?.token === token;
  }

  /**
   * While this node holds rwo volumes, a fencing agent must watch the lease (`ferry fence`, its own unit): without
   * one, a ferryd that dies leaves their writers running when another node takes the volume over. Warn (status,
   * doctor, log) while its beat is missing or old; clear the warning when it is back or nothing is held.
   */
  private async checkAgent(): Promise<void> {
    const dataDir = this.opts.dataDir;
    if (!dataDir || !this.opts.warnings) return;
    if (this.held.size === 0) return this.opts.warnings.clear('fence-agent');
    const beat = await readAgentBeat(dataDir);
    const age = beat ? this.now() - beat.seenAt : undefined;
    if (age !== undefined && age <= AGENT_GONE_MS) {
      if (this.agentMissing) this.opts.log.info({ pid: beat!.pid }, 'a fencing agent watches the lease again');
      this.agentMissing = false;
      return this.opts.warnings.clear('fence-agent');
    }
    const message =
      `no fencing agent watches this node's lease (${agentBeatPath(dataDir)} ${beat ? `last written ${Math.round(age! / 1000)} s ago` : 'missing'}) while it holds ${this.held.size} rwo volume(s): ` +
      'if ferryd dies, their writers keep running when another node takes them over. Run `ferry fence --data-dir ' + dataDir + '` (contrib/ferry-fence.service)';
    if (!this.agentMissing) this.opts.log.warn({ held: [...this.held.keys()] }, message);
    this.agentMissing = true;
    this.opts.warnings.add('fence-agent', { code: 'fence_agent', file: agentBeatPath(dataDir), message });
  }
  private agentMissing = false;

  /** Renew the local lease: the rwo volumes held here, and when each pool's last heartbeat landed. */
  private async writeLease(): Promise<void> {
    if (!this.lease) return;
    await this.checkAgent();
    await this.lease.write(
      [...this.held.keys()].map((key) => {
        const i = key.indexOf('/');
        const pool = key.slice(0, i);
        const volume = key.slice(i + 1);
        return { pool, volume, path: this.poolOf(pool).mountpoint(volume) };
      }),
    );
  }

  /**
   * What the fencing agent did while this node could not beat: acknowledge it; when another node took the
   * volume over meanwhile, forget the lock here (nothing resumes writing: the containers are dead and a new
   * Mount is refused while the new holder is alive) and say who holds it now.
   */
  private async reconcileFences(): Promise<void> {
    if (!this.lease) return;
    for (const r of this.lease.pending()) {
      if (!this.stores.has(r.pool) || !this.ready.has(r.pool)) continue; // the share is still away: later
      const s = this.stores.get(r.pool)!;
      const key = `${r.pool}/${r.volume}`;
      const token = this.held.get(key);
      const cur = await s.readLock(r.volume);
      if ((token && cur?.token === token) || cur?.node === this.node) {
        this.opts.log.warn({ pool: r.pool, volume: r.volume, fence: r }, `rwo volume ${r.volume} was fenced here at ${r.at} (killed ${r.pids.length} process(es)); this node still holds it`);
      } else {
        this.held.delete(key);
        const holder = cur?.node ?? 'nobody';
        const message = `rwo volume ${r.volume} was fenced here at ${r.at} (killed ${r.pids.length} process(es)) and is now held by node ${holder}: its containers here stay stopped`;
        this.opts.log.error({ pool: r.pool, volume: r.volume, holder, fence: r }, message);
        this.opts.warnings?.add(`fenced:${key}`, { code: 'fenced', message });
      }
      this.lease.ack(r.id);
    }
  }

  async release(pool: string, volume: string): Promise<void> {
    const key = `${pool}/${volume}`;
    const token = this.held.get(key);
    this.held.delete(key);
    if (token) await (await this.store(pool)).breakLock(volume, token);
  }
}
