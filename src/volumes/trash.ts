/** The trash: removed volumes kept for their retention, listed, brought back (undelete) and purged. */
import type { Logger } from 'pino';
import { TRASH_ID_PATTERN, type Catalog, type TrashRecord, type VolumeRecord } from '../catalog/catalog.js';
import type { Pool } from '../pools/pool.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';
import { checkVolumeName } from './names.js';
import type { TrashEntry } from '../wire/types.js';

/** A trash entry as the API shows it (the wire contract), before its size is measured. */
export type TrashInfo = Omit<TrashEntry, 'bytes'>;

export function trashInfo(t: TrashRecord, node: string): TrashInfo {
  const labels = t.volume.docker?.labels;
  return { id: t.id, name: t.volume.name, pool: t.volume.pool, removedAt: t.removedAt, expiresAt: t.expiresAt, removedBy: node, ...(labels && Object.keys(labels).length ? { dockerLabels: labels } : {}) };
}

/** What the trash needs of the volume service. */
export interface TrashContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly node: string;
  readonly now: () => number;
  readonly lock: KeyedLock;
  pool(name: string): Pool;
  isShared(pool: string): boolean;
  /** Is there a volume of this name (in a shared pool: on any node)? */
  exists(name: string): Promise<boolean>;
  /** Publish the record of a shared volume; false when another node has the name. */
  publish(rec: VolumeRecord): Promise<boolean>;
}

export class Trash {
  constructor(private readonly c: TrashContext) {}

  list(): TrashInfo[] {
    return this.c.catalog.trash
      .values()
      .map((t) => trashInfo(t, this.c.node))
      .sort((a, b) => b.removedAt.localeCompare(a.removedAt));
  }

  /** Find a trash entry by its id, or by volume name (the newest removal of that name). */
  private entry(ref: string): TrashRecord {
    if (TRASH_ID_PATTERN.test(ref)) {
      const t = this.c.catalog.trash.get(ref);
      if (t) return t;
      throw new FerryError('not_found', `no trash entry ${ref}; \`ferry trash ls\` lists them`);
    }
    checkVolumeName(ref);
    const matches = this.c.catalog.trash.values().filter((t) => t.volume.name === ref);
    if (matches.length === 0) throw new FerryError('not_found', `no removed volume named ${ref} in the trash; \`ferry trash ls\` lists what is there`);
    return matches.sort((a, b) => b.removedAt.localeCompare(a.removedAt))[0]!;
  }

  /** Bring a removed volume back under its own name or `as` (the record first, then the data, then the trash record goes). */
  async undelete(ref: string, as?: string): Promise<VolumeRecord> {
    const t = this.entry(ref);
    const name = checkVolumeName(as ?? t.volume.name);
    return this.c.lock.run(name, async () => {
      if (!this.c.catalog.trash.get(t.id)) throw new FerryError('not_found', `trash entry ${t.id} was purged meanwhile`);
      if (await this.c.exists(name)) {
        throw new FerryError('exists', `a volume named ${name} exists again; undelete under another name with --as NEW_NAME`);
      }
      const pool = this.c.pool(t.volume.pool);
      const rec: VolumeRecord = { ...t.volume, name, mounts: {} };
      await this.c.catalog.volumes.save(name, rec);
      try {
        await pool.restoreFromTrash(t.id, name);
      } catch (err) {
        await this.c.catalog.volumes.save(name, undefined);
        if (isErrno(err, 'ENOTEMPTY') || isErrno(err, 'EEXIST')) throw new FerryError('exists', `pool ${rec.pool} holds a volume ${name} again; undelete under another name with --as NEW_NAME`);
        throw err;
      }
      if (this.c.isShared(rec.pool) && !(await this.c.publish(rec))) {
        await pool.moveToTrash(name, t.id);
        await this.c.catalog.volumes.save(name, undefined);
        throw new FerryError('exists', `another node created a volume named ${name} meanwhile; undelete under another name with --as NEW_NAME`);
      }
      await this.c.catalog.trash.save(t.id, undefined);
      this.c.log.info({ volume: name, trash: t.id }, 'volume restored from the trash');
      return rec;
    });
  }

  /** Delete one entry's data, then its record. */
  async purgeOne(t: TrashRecord): Promise<void> {
    await this.c.pool(t.volume.pool).purgeTrash(t.id);
    await this.c.catalog.trash.save(t.id, undefined);
  }

  /** Delete trash entries for good: the given ones (ids or names), or all of them. */
  async purge(refs: string[] | 'all'): Promise<TrashInfo[]> {
    const entries = refs === 'all' ? this.c.catalog.trash.values() : refs.map((r) => this.entry(r));
    const done: TrashInfo[] = [];
    for (const t of entries) {
      await this.purgeOne(t);
      done.push(trashInfo(t, this.c.node));
      this.c.log.info({ trash: t.id }, 'trash entry purged');
    }
    return done;
  }

  /** Purge the entries whose retention has passed; returns how many were due. */
  async purgeExpired(): Promise<number> {
    const now = this.c.now();
    const expired = this.c.catalog.trash.values().filter((t) => Date.parse(t.expiresAt) <= now);
    for (const t of expired) {
      try {
        await this.purgeOne(t);
        this.c.log.info({ trash: t.id }, 'trash entry expired and purged');
      } catch (err) {
        this.c.log.error({ trash: t.id, err: errorMessage(err) }, 'could not purge expired trash entry');
      }
    }
    return expired.length;
  }
}
