/** Start-up: catalog records that could not be read are moved aside and rebuilt from what the pools still hold. */
import type { Logger } from 'pino';
import { TRASH_ID_PATTERN, type Catalog, type Unreadable, type VolumeRecord } from '../catalog/catalog.js';
import type { Pool } from '../pools/pool.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Quarantine } from '../util/quarantine.js';
import { errorMessage } from '../util/errors.js';
import type { VolumeOptions } from './options.js';

/**
 * The options a volume adopted from its directory can still be known to have: its size, as the filesystem enforces
 * it (an image's size, a btrfs qgroup's limit), so that a rebuilt record keeps the volume's size and its checks.
 */
export async function recoveredOptions(pool: Pool, name: string): Promise<VolumeOptions> {
  const limit = await pool.sizeLimits.read(pool.mountpoint(name)).catch(() => undefined);
  return limit?.enforcedBytes != null ? { size: limit.enforcedBytes } : {};
}

export interface SalvageDeps {
  catalog: Catalog;
  pools: Map<string, Pool>;
  node: string;
  trashRetentionMs: number;
  now: () => number;
  log: Logger;
  quarantine?: Quarantine;
  cluster?: Cluster;
}

/**
 * A volume whose record is unreadable but whose directory exists is adopted (default options, the label
 * `ferry.recovered`, its mounts as the mount journal still tells them), so Docker keeps finding it. A trash
 * record is rebuilt from its id and given a full retention from now, so nothing is purged because its
 * record could not be read. Without a quarantine (tests of the catalog alone) the files stay in place.
 */
export async function salvage(bad: Unreadable, d: SalvageDeps): Promise<void> {
  if (!d.quarantine) {
    for (const { file } of [...bad.volumes.values(), ...bad.trash.values()]) d.log.error({ file }, 'catalog file is unreadable; left in place');
    return;
  }
  for (const [name, lost] of bad.volumes) {
    const found = await findVolume(name, d);
    const mounts = Object.keys(lost.mounts).length;
    const assumed = found
      ? `Volume ${name} was adopted from its directory in pool ${found.pool} and is served as before, but with ${found.shared ? 'the options and labels of the shared pool’s record' : 'default options but its size and no labels (the ones it was created with are lost; `docker volume inspect` still shows what Docker knew)'}` +
        `; ${mounts} Docker mount(s) recovered from the mount journal.`
      : `No pool holds a directory for volume ${name}: it is not served.`;
    await d.quarantine.moveAside(lost.file, lost.why, assumed);
    if (!found) continue;
    const rec: VolumeRecord = found.record ?? {
      name,
      pool: found.pool,
      createdAt: lost.createdAt ?? new Date(d.now()).toISOString(),
      node: d.node,
      options: await recoveredOptions(d.pools.get(found.pool)!, name),
      labels: { 'ferry.recovered': 'true' },
      mounts: {},
    };
    await d.catalog.volumes.save(name, { ...rec, mounts: lost.mounts });
  }
  for (const [id, lost] of bad.trash) {
    const m = TRASH_ID_PATTERN.exec(id);
    const pool = m ? await firstPool(d.pools, (p) => p.hasTrash(id)) : undefined;
    const expiresAt = new Date(d.now() + d.trashRetentionMs).toISOString();
    await d.quarantine.moveAside(
      lost.file,
      lost.why,
      pool
        ? `Trash entry ${id} was rebuilt from its name and its data in pool ${pool.name}: it can be undeleted (default options, no labels) and expires at ${expiresAt}, a full retention from now.`
        : `No pool holds trash data for ${id}: nothing to undelete.`,
    );
    if (!pool || !m) continue;
    const removedAt = new Date(Number(m[2])).toISOString();
    await d.catalog.trash.save(id, {
      id,
      removedAt,
      expiresAt,
      volume: { name: m[1]!, pool: pool.name, createdAt: removedAt, node: d.node, options: {}, labels: { 'ferry.recovered': 'true' }, mounts: {} },
    });
  }
}

async function findVolume(name: string, d: SalvageDeps): Promise<{ pool: string; shared: boolean; record?: VolumeRecord } | undefined> {
  for (const [poolName, pool] of d.pools) {
    const shared = d.cluster?.isShared(poolName) ?? false;
    if (shared) {
      // the shared pool's record is the truth; this node's file only added its mounts
      try {
        const rec = await (await d.cluster!.store(poolName)).read(name);
        if (rec) return { pool: poolName, shared, record: { ...rec, mounts: {} } };
      } catch (err) {
        d.log.warn({ volume: name, pool: poolName, err: errorMessage(err) }, 'could not read the shared record of a volume whose local record is unreadable');
      }
      continue;
    }
    if (await pool.hasLive(name).catch(() => false)) return { pool: poolName, shared };
  }
  return undefined;
}

async function firstPool(pools: Map<string, Pool>, test: (p: Pool) => Promise<boolean>): Promise<Pool | undefined> {
  for (const p of pools.values()) if (await test(p).catch(() => false)) return p;
  return undefined;
}
