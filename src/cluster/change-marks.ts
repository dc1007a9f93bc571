/** Marks of changes in progress (rm, restore, reset) on a shared volume: one half of the rm-vs-Mount handshake. */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FerryError, errorMessage } from '../util/errors.js';
import type { ChangeMark, NodeBeat, SharedRecord, SharedStore } from './shared-store.js';

/** What the marks need of the cluster node. */
export interface ChangeContext {
  readonly node: string;
  readonly instance: string;
  readonly now: () => number;
  readonly log: Logger;
  store(pool: string): Promise<SharedStore>;
  isAlive(beat: NodeBeat | undefined): boolean;
}

export class ChangeMarks {
  constructor(private readonly c: ChangeContext) {}

  /**
   * Mark a change of a shared volume that needs it unmounted everywhere (remove, restore, reset) as in
   * progress on this node, before the caller's last look at the attachments (the other half of the
   * handshake is `changeElsewhere`, which a Mount reads after publishing its attachment). Refused (`in_use`)
   * while another live ferryd has one in progress; a mark left by a ferryd that is gone is broken. Returns
   * the function that ends the change (a mark it cannot remove now is retried on each heartbeat).
   */
  async beginChange(pool: string, rec: SharedRecord, what: string): Promise<() => Promise<void>> {
    const s = await this.c.store(pool);
    for (let attempt = 0; attempt < 5; attempt++) {
      const token = randomBytes(8).toString('hex');
      const mark: ChangeMark = { node: this.c.node, instance: this.c.instance, volume: rec.name, createdAt: rec.createdAt, what, since: new Date(this.c.now()).toISOString(), token };
      if (await s.tryChange(mark)) return () => this.endChange(pool, rec.name, token);
      const cur = await s.readChange(rec.name);
      if (!cur) continue; // ended meanwhile
      if (await this.markCounts(s, cur)) {
        throw new FerryError('in_use', `volume ${rec.name} is busy: node ${cur.node} is about to ${cur.what} (since ${cur.since}); try again when that is done`, { node: cur.node });
      }
      this.c.log.warn({ volume: rec.name, mark: cur }, 'dropping the mark of a change that a ferryd which is gone left unfinished');
      await s.endChange(rec.name, cur.token);
    }
    throw new FerryError('unavailable', `could not mark the change of ${rec.name}: other nodes keep racing for it; try again`);
  }

  /** A change of this incarnation of the volume that another live ferryd has in progress, if any. */
  async changeElsewhere(pool: string, rec: SharedRecord): Promise<ChangeMark | undefined> {
    const s = await this.c.store(pool);
    const cur = await s.readChange(rec.name);
    if (!cur || cur.createdAt !== rec.createdAt || (cur.node === this.c.node && cur.instance === this.c.instance)) return undefined;
    return (await this.markCounts(s, cur)) ? cur : undefined;
  }

  /** A mark counts while the ferryd that wrote it beats (same node, same instance, heartbeat not expired). */
  private async markCounts(s: SharedStore, mark: ChangeMark): Promise<boolean> {
    if (mark.node === this.c.node && mark.instance === this.c.instance) return true;
    const beat = await s.beatOf(mark.node);
    return this.c.isAlive(beat) && beat!.instance === mark.instance && !beat!.stoppedAt;
  }

  /** Change marks this node could not remove yet (share away): `pool/volume` → token; retried each heartbeat. */
  private readonly unendedChanges = new Map<string, string>();

  async endChange(pool: string, volume: string, token: string): Promise<void> {
    const key = `${pool}/${volume}`;
    try {
      await (await this.c.store(pool)).endChange(volume, token);
      this.unendedChanges.delete(key);
    } catch (err) {
      this.unendedChanges.set(key, token);
      this.c.log.warn({ pool, volume, err: errorMessage(err) }, 'could not remove the mark of a finished change; retrying on the next heartbeat');
    }
  }


  /** Each heartbeat: try again to remove the marks that could not be removed when their change ended. */
  async retryUnended(): Promise<void> {
    for (const [key, token] of [...this.unendedChanges]) {
      const i = key.indexOf('/');
      await this.endChange(key.slice(0, i), key.slice(i + 1), token);
    }
  }
}
