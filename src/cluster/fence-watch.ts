/** The node's side of fencing: the local lease the agent watches, a warning when no agent runs, what the agent did. */
import type { Logger } from 'pino';
import type { StateWarnings } from '../util/state-warnings.js';
import { LeaseKeeper } from '../fence/lease-keeper.js';
import { AGENT_GONE_MS, agentBeatPath, readAgentBeat } from '../fence/lease.js';
import type { SharedStore } from './shared-store.js';

/** What fencing needs of the cluster node. */
export interface FenceContext {
  readonly node: string;
  readonly now: () => number;
  readonly log: Logger;
  readonly dataDir?: string;
  readonly warnings?: StateWarnings;
  /** The rwo locks held here, by `pool/volume` (RwoLocks.held; a fenced volume taken over is forgotten). */
  readonly held: Map<string, string>;
  /** A shared pool's store while the pool is up and this node beats in it. */
  readyStore(pool: string): SharedStore | undefined;
  mountpoint(pool: string, volume: string): string;
}

export class FenceWatch {
  constructor(
    private readonly c: FenceContext,
    /** The local lease the fencing agent watches (src/fence/); undefined without shared pools or a data dir. */
    readonly lease: LeaseKeeper | undefined,
  ) {}

  /**
   * While this node holds rwo volumes, a fencing agent must watch the lease (`ferry fence`, its own unit): without
   * one, a ferryd that dies leaves their writers running when another node takes the volume over. Warn (status,
   * doctor, log) while its beat is missing or old; clear the warning when it is back or nothing is held.
   */
  private async checkAgent(): Promise<void> {
    const dataDir = this.c.dataDir;
    if (!dataDir || !this.c.warnings) return;
    if (this.c.held.size === 0) return this.c.warnings.clear('fence-agent');
    const beat = await readAgentBeat(dataDir);
    const age = beat ? this.c.now() - beat.seenAt : undefined;
    if (age !== undefined && age <= AGENT_GONE_MS) {
      if (this.agentMissing) this.c.log.info({ pid: beat!.pid }, 'a fencing agent watches the lease again');
      this.agentMissing = false;
      return this.c.warnings.clear('fence-agent');
    }
    const message =
      `no fencing agent watches this node's lease (${agentBeatPath(dataDir)} ${beat ? `last written ${Math.round(age! / 1000)} s ago` : 'missing'}) while it holds ${this.c.held.size} rwo volume(s): ` +
      'if ferryd dies, their writers keep running when another node takes them over. Run `ferry fence --data-dir ' + dataDir + '` (contrib/ferry-fence.service)';
    if (!this.agentMissing) this.c.log.warn({ held: [...this.c.held.keys()] }, message);
    this.agentMissing = true;
    this.c.warnings.add('fence-agent', { code: 'fence_agent', file: agentBeatPath(dataDir), message });
  }
  private agentMissing = false;

  /** Renew the local lease: the rwo volumes held here, and when each pool's last heartbeat landed. */
  async writeLease(): Promise<void> {
    if (!this.lease) return;
    await this.checkAgent();
    await this.lease.write(
      [...this.c.held.keys()].map((key) => {
        const i = key.indexOf('/');
        const pool = key.slice(0, i);
        const volume = key.slice(i + 1);
        return { pool, volume, path: this.c.mountpoint(pool, volume) };
      }),
    );
  }

  /**
   * What the fencing agent did while this node could not beat: acknowledge it; when another node took the
   * volume over meanwhile, forget the lock here (nothing resumes writing: the containers are dead and a new
   * Mount is refused while the new holder is alive) and say who holds it now.
   */
  async reconcileFences(): Promise<void> {
    if (!this.lease) return;
    for (const r of this.lease.pending()) {
      const s = this.c.readyStore(r.pool);
      if (!s) continue; // the share is still away: later
      const key = `${r.pool}/${r.volume}`;
      const token = this.c.held.get(key);
      const cur = await s.readLock(r.volume);
      if ((token && cur?.token === token) || cur?.node === this.c.node) {
        this.c.log.warn({ pool: r.pool, volume: r.volume, fence: r }, `rwo volume ${r.volume} was fenced here at ${r.at} (killed ${r.pids.length} process(es)); this node still holds it`);
      } else {
        this.c.held.delete(key);
        const holder = cur?.node ?? 'nobody';
        const message = cur
          ? `rwo volume ${r.volume} was fenced here at ${r.at} (killed ${r.pids.length} process(es)) and is now held by node ${holder}: its containers here stay stopped`
          : `rwo volume ${r.volume} was fenced here at ${r.at} (killed ${r.pids.length} process(es)); no node holds it now: \`docker start\` its containers here to use it again`;
        this.c.log.error({ pool: r.pool, volume: r.volume, holder, fence: r }, message);
        this.c.warnings?.add(`fenced:${key}`, { code: 'fenced', message });
      }
      this.lease.ack(r.id);
    }
  }

}
