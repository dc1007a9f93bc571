/**
 * The fencing agent (`ferry fence --data-dir D`): a small process beside ferryd that needs neither ferryd,
 * dockerd nor the share. It reads the local lease ferryd renews at each heartbeat (lease.ts); when a pool's
 * lease runs out (ferryd dead or hung, or the share unreachable so no heartbeat lands), it kills every process
 * that has one of this node's rwo volumes of that pool mounted (writers.ts), before the fence deadline, and
 * keeps doing so until ferryd has reconciled (acknowledged the fence in a newer lease). What it did is
 * appended to DATA_DIR/fence/fenced.jsonl, which ferryd reads back (cluster.ts reconcileFences).
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { AGENT_BEAT_MS, fenceDir, fenceLogPath, readLease, writeAgentBeat, type FenceLease, type HeldVolume } from './lease.js';
import { findWriters, killWriters } from './writers.js';
import { abortShare, stillRunning } from './fuse-abort.js';
import { unansweredBytes } from './share-connections.js';

export interface FenceRecord {
  id: string;
  at: string;
  node: string;
  pool: string;
  volume: string;
  /** The lease that ran out. */
  renewedAt: string;
  deadline: string;
  pids: number[];
  cgroups: string[];
  /** Killed processes that had not exited STUCK_MS later: a request in flight to a share that does not answer. */
  stuck?: number[];
  /** What was done about them on a FUSE share (the connection aborted), or why it could not be. */
  fuseAbort?: string;
  /** No killed writer stuck, but the FUSE server had sent bytes the share did not acknowledge (a write accepted
   * by the client's write-behind): the same abort is done for them. */
  unanswered?: string;
  /** What was done about the FUSE server's TCP connections (closed, their queued writes discarded), or why not. */
  connectionsClosed?: string;
}

/** How long killed writers get to exit before they are taken as stuck on the share. */
export const STUCK_MS = 200;

/** How often a fenced FUSE share is looked at again for writes it has not acknowledged. */
const LOOK_AGAIN_MS = 1000;

/** The share of the fence deadline after which the agent acts: the rest is its margin to kill before the deadline. */
export const FIRE_AT = 0.75;

export function fireAt(lease: FenceLease, pool: string): number | undefined {
  const p = lease.pools[pool];
  return p ? p.renewedAt + FIRE_AT * lease.fenceMs : undefined;
}

export function readFenceLog(dataDir: string): FenceRecord[] {
  try {
    return readFileSync(fenceLogPath(dataDir), 'utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as FenceRecord];
        } catch {
          return [];
        }
      });
  } catch {
    return [];
  }
}

export class FenceAgent {
  /** Volumes fenced and not yet acknowledged by ferryd: `pool/volume` -> fence id. */
  private readonly fenced = new Map<string, string>();
  /** Processes killed for each fenced volume: one still dying (stuck on the share) is not killed and recorded again. */
  private readonly killed = new Map<string, Set<number>>();
  /** FUSE connections aborted (by device): a dead connection is not aborted twice. */
  private readonly aborted = new Set<string>();
  /** When each fenced FUSE share (by device: only those its killed writers had mounted) was last looked at. */
  private readonly lastLook = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = new Date().toISOString();
  private running: Promise<void> | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly opts: { pollMs?: number; cgroupPrefix?: string; log?: (msg: string, rec?: unknown) => void; now?: () => number } = {},
  ) {
    mkdirSync(fenceDir(dataDir), { recursive: true });
    // fences of an earlier run of the agent: still in force until ferryd acknowledges them
    for (const r of readFenceLog(dataDir)) this.fenced.set(`${r.pool}/${r.volume}`, r.id);
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.opts.pollMs ?? 50);
    // ferryd warns (status, doctor) while it holds rwo volumes and this beat is missing or old
    const beat = () => writeAgentBeat(this.dataDir, { pid: process.pid, startedAt: this.startedAt, seenAt: (this.opts.now ?? Date.now)() }).catch((err) => this.opts.log?.(`could not write the agent's beat: ${String(err)}`));
    void beat();
    this.beatTimer = setInterval(() => void beat(), AGENT_BEAT_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.beatTimer);
    await this.running;
  }

  /** One look at the lease: fence what ran out. */
  check(): Promise<void> {
    return (this.running ??= this.checkOnce().finally(() => (this.running = undefined)));
  }

  private async checkOnce(): Promise<void> {
    const lease = await readLease(this.dataDir);
    if (!lease) return;
    const now = (this.opts.now ?? Date.now)();
    const acked = new Set((lease as FenceLease & { acked?: string[] }).acked ?? []);
    for (const [key, id] of this.fenced) {
      if (!acked.has(id)) continue;
      this.fenced.delete(key);
      this.killed.delete(key);
    }
    // every fence acknowledged: ferryd has mounted its shares again, and a new FUSE connection can have the number
    // of one aborted before; it must be aborted again at the next fence
    if (this.fenced.size === 0) {
      this.aborted.clear();
      this.lastLook.clear();
    }
    const byPool = new Map<string, HeldVolume[]>();
    for (const h of lease.held) byPool.set(h.pool, [...(byPool.get(h.pool) ?? []), h]);
    for (const [pool, held] of byPool) {
      const at = fireAt(lease, pool);
      const expired = at === undefined || now >= at;
      for (const h of held) {
        const key = `${pool}/${h.volume}`;
        if (!expired && !this.fenced.has(key)) continue;
        if (!h.dev || !h.fsRoot) continue;
        const known = this.killed.get(key) ?? new Set<number>();
        const writers = findWriters([{ dev: h.dev, fsRoot: h.fsRoot }], this.opts.cgroupPrefix).filter((w) => !known.has(w.pid));
        if (writers.length === 0 && this.fenced.has(key)) {
          this.lookAgain(lease, pool, h, now);
          continue;
        }
        const r = killWriters(writers);
        if (this.fenced.has(key) && r.pids.length === 0) continue;
        for (const p of r.pids) known.add(p);
        this.killed.set(key, known);
        // a killed process that does not exit has a request in flight to a share that does not answer: on FUSE,
        // abort the connection, or the request lands when the share answers again, after another node took over
        const onFuse = writers.some((w) => w.fstype?.startsWith('fuse'));
        if (onFuse && !this.lastLook.has(h.dev)) this.lastLook.set(h.dev, now);
        if (onFuse) await new Promise((res) => setTimeout(res, STUCK_MS));
        const stuck = onFuse ? stillRunning(r.pids) : [];
        // none stuck: a write the client accepted may still wait, sent and unanswered, in its connections
        const unanswered = onFuse && stuck.length === 0 ? this.unanswered(h.dev) : undefined;
        const done = stuck.length > 0 || unanswered ? this.abort(h.dev) : {};
        this.record(lease, pool, h, now, { pids: r.pids, cgroups: r.cgroups, ...(stuck.length > 0 ? { stuck } : {}), ...(unanswered ? { unanswered } : {}), ...done });
      }
    }
  }

  /** Looks at a fenced FUSE share: a write sent just before the kill shows as unanswered only after a retransmission. */
  private lookAgain(lease: FenceLease, pool: string, h: HeldVolume, now: number): void {
    const last = h.dev ? this.lastLook.get(h.dev) : undefined;
    if (!h.dev || last === undefined || this.aborted.has(h.dev) || now - last < LOOK_AGAIN_MS) return;
    this.lastLook.set(h.dev, now);
    const unanswered = this.unanswered(h.dev);
    if (unanswered) this.record(lease, pool, h, now, { pids: [], cgroups: [], unanswered, ...this.abort(h.dev) });
  }

  private unanswered(dev: string): string | undefined {
    if (this.aborted.has(dev)) return undefined;
    const w = unansweredBytes(dev);
    return w && `${w.bytes} byte(s) sent to ${w.peers.join(' ')} and not acknowledged`;
  }

  private abort(dev: string): Pick<FenceRecord, 'fuseAbort' | 'connectionsClosed'> {
    if (this.aborted.has(dev)) return {};
    const done = abortShare(dev);
    if (/^aborted/.test(done.fuseAbort)) this.aborted.add(dev);
    return done;
  }

  private record(lease: FenceLease, pool: string, h: HeldVolume, now: number, what: Pick<FenceRecord, 'pids' | 'cgroups' | 'stuck' | 'unanswered' | 'fuseAbort' | 'connectionsClosed'>): void {
    const key = `${pool}/${h.volume}`;
    const id = this.fenced.get(key) ?? randomBytes(6).toString('hex');
    this.fenced.set(key, id);
    const p = lease.pools[pool];
    const rec: FenceRecord = {
      id,
      at: new Date(now).toISOString(),
      node: lease.node,
      pool,
      volume: h.volume,
      renewedAt: new Date(p?.renewedAt ?? 0).toISOString(),
      deadline: new Date(p?.deadline ?? 0).toISOString(),
      ...what,
    };
    appendFileSync(fenceLogPath(this.dataDir), JSON.stringify(rec) + '\n');
    const { stuck = [], unanswered, fuseAbort, connectionsClosed } = what;
    this.opts.log?.(
      `fenced rwo volume ${h.volume} of pool ${pool}: the lease renewed at ${rec.renewedAt} ran out; killed ${what.pids.length} process(es)` +
        `${stuck.length ? `, ${stuck.length} stuck on the share` : ''}${unanswered ? `, ${unanswered} by the share` : ''}${fuseAbort ? ` (${fuseAbort}; ${connectionsClosed})` : ''}`,
      rec,
    );
  }
}
