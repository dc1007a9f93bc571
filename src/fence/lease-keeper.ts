/**
 * ferryd's side of fencing: renew the local lease after each heartbeat that reached a shared pool, and
 * reconcile what the agent fenced (acknowledge it; drop the volumes this node no longer holds).
 */
import { readFileSync } from 'node:fs';
import { writeLease, type FenceLease, type HeldVolume } from './lease.js';
import { locate } from './mountinfo.js';
import { readFenceLog, type FenceRecord } from './agent.js';

export class LeaseKeeper {
  /** lastSeen of the last heartbeat that reached each pool. */
  private readonly renewed = new Map<string, number>();
  private readonly acked = new Set<string>();
  private readonly located = new Map<string, { dev: string; fsRoot: string }>();

  constructor(
    private readonly dataDir: string,
    private readonly opts: { node: string; fenceMs: number; heartbeatMs: number },
  ) {}

  beatReached(pool: string, lastSeen: number): void {
    this.renewed.set(pool, lastSeen);
  }

  /** The fences the agent recorded that ferryd has not acknowledged yet. */
  pending(): FenceRecord[] {
    return readFenceLog(this.dataDir).filter((r) => !this.acked.has(r.id));
  }

  ack(id: string): void {
    this.acked.add(id);
  }

  /** Write the lease: `held` are this node's rwo volumes, `path` their data directories. */
  async write(held: Array<Omit<HeldVolume, 'dev' | 'fsRoot'>>): Promise<void> {
    let mountinfo = '';
    try {
      mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      // no /proc: the agent cannot find writers, the lease still says when they should die
    }
    // located once, while the share is there (just after the lock was taken): a cut-off share's mount point
    // may be gone or hidden later, and the writers still have the directory mounted from it
    for (const key of [...this.located.keys()]) if (!held.some((h) => `${h.pool}/${h.volume}` === key)) this.located.delete(key);
    for (const h of held) {
      const key = `${h.pool}/${h.volume}`;
      const where = this.located.get(key) ?? locate(h.path, mountinfo);
      if (where) this.located.set(key, where);
    }
    const pools: FenceLease['pools'] = {};
    for (const [pool, at] of this.renewed) pools[pool] = { renewedAt: at, deadline: at + this.opts.fenceMs };
    const lease: FenceLease & { acked: string[] } = {
      node: this.opts.node,
      pid: process.pid,
      fenceMs: this.opts.fenceMs,
      heartbeatMs: this.opts.heartbeatMs,
      writtenAt: Date.now(),
      pools,
      held: held.map((h) => ({ ...h, ...(this.located.get(`${h.pool}/${h.volume}`) ?? {}) })),
      acked: [...this.acked],
    };
    await writeLease(this.dataDir, lease);
  }
}
