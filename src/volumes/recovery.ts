/** Start-up recovery of the catalog: a removal or undelete cut short by a crash is finished or rolled back by where the data is (and by which records exist); volume directories without a record are adopted, unless a restore or clone was filling them. */
import type { Logger } from 'pino';
import { TRASH_ID_PATTERN, type Catalog } from '../catalog/catalog.js';
import type { Pool } from '../pools/pool.js';
import { recoveredOptions } from './salvage.js';
import { errorMessage } from '../util/errors.js';

/** What recovery needs of the volume service. */
export interface RecoveryContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly node: string;
  readonly now: () => number;
  readonly pools: ReadonlyMap<string, Pool>;
  isShared(pool: string): boolean;
}

/**
 * A removal writes the trash record, moves the data, then deletes the volume record (in a local pool the
 * data moves while the trash record is written, which is put in place after: see the first loop below over
 * the pools); an undelete writes
 * the volume record, moves the data back, then deletes the trash record. After a crash, where the data
 * is decides which record stays. Directories without any record are adopted, never deleted, except the
 * partial data of a restore or clone a crash cut short (catalog/fill-markers.ts).
 */
export async function recoverCatalog(c: RecoveryContext): Promise<void> {
  const { catalog, log } = c;
  for (const t of catalog.trash.values()) {
    const pool = c.pools.get(t.volume.pool);
    if (!pool) continue;
    // The live record of the same volume, possibly under a new name after `undelete --as`.
    const twin = catalog.volumes.values().find((v) => v.pool === t.volume.pool && v.createdAt === t.volume.createdAt);
    if (await pool.hasTrash(t.id)) {
      if (twin) {
        log.warn({ volume: twin.name, trash: t.id }, 'recovery: the data is in the trash, dropping the live record');
        await catalog.volumes.save(twin.name, undefined);
      }
    } else if (!twin) {
      log.warn({ trash: t.id }, 'recovery: trash data is gone (purge was interrupted), dropping the trash record');
      await catalog.trash.save(t.id, undefined);
    } else if (await pool.hasLive(twin.name)) {
      log.warn({ volume: twin.name, trash: t.id }, 'recovery: the data is live, dropping the trash record');
      await catalog.trash.save(t.id, undefined);
    } else {
      log.error({ volume: twin.name, trash: t.id }, 'recovery: volume data found neither live nor in the trash');
    }
  }
  for (const [poolName, pool] of c.pools) {
    // A removal in a local pool moves the data into the trash while it writes the trash record (removal.ts):
    // data in the trash without a record, its volume's record still there and no live data, is a removal
    // killed before it was acknowledged. It is undone.
    if (c.isShared(poolName)) continue;
    for (const id of await pool.listTrash()) {
      const m = TRASH_ID_PATTERN.exec(id);
      const rec = m && !catalog.trash.has(id) ? catalog.volumes.get(m[1]!) : undefined;
      if (!rec || rec.pool !== poolName || (await pool.hasLive(rec.name))) continue;
      log.warn({ volume: rec.name, trash: id }, 'recovery: a removal was cut short before its trash record was written, moving the data back');
      await pool.restoreFromTrash(id, rec.name);
    }
  }
  // restores and clones a crash cut short before their record: part of the data, never to be adopted as whole
  const cutShort = await catalog.filling.list();
  const keep = new Set<string>();
  for (const [poolName, pool] of c.pools) {
    // In a shared pool a directory without a record may be a create in progress on another host.
    if (c.isShared(poolName)) continue;
    for (const name of await pool.listLive()) {
      if (catalog.volumes.get(name)) continue;
      if (cutShort.has(name) && (cutShort.get(name) ?? poolName) === poolName) {
        log.warn({ volume: name, pool: poolName }, 'recovery: removing the partial data of a restore or clone that a crash cut short (it was never answered; its source is unchanged: run it again)');
        const trashId = `${name}@${c.now()}`;
        try {
          await pool.detachLeftover?.(name); // (an image mounted for its fill)
          await pool.moveToTrash(name, trashId);
          await pool.purgeTrash(trashId);
        } catch (err) {
          // (neither adopted nor deleted: its marker stays, and the next start tries again)
          log.error({ volume: name, pool: poolName, err: errorMessage(err) }, 'recovery: could not remove the partial data of a restore or clone a crash cut short');
          keep.add(name);
        }
        continue;
      }
      log.warn({ volume: name, pool: poolName }, 'recovery: adopting a volume directory that had no catalog record');
      await catalog.volumes.save(name, {
        name,
        pool: poolName,
        createdAt: new Date(c.now()).toISOString(),
        node: c.node,
        options: await recoveredOptions(pool, name),
        labels: { 'ferry.recovered': 'true' },
        mounts: {},
      });
    }
  }
  for (const name of cutShort.keys()) if (!keep.has(name)) await catalog.filling.clear(name);
}
