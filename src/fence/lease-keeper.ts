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
    const pools: FenceLease['pools'] = {};
    for (const [pool, at] of this.renewed) pools[pool] = { renewedAt: at, deadline: at + this.opts.fenceMs };
    const lease: FenceLease & { acked: string[] } = {
      node: this.opts.node,
      pid: process.pid,
      fenceMs: this.opts.fenceMs,
      heartbeatMs: this.opts.heartbeatMs,
      writtenAt: Date.now(),
      pools,
      held: held.map((h) => ({ ...h, ...(locate(h.path, mountinfo) ?? {}) })),
      acked: [...this.acked],
    };
    await writeLease(this.dataDir, lease);
  }
}
