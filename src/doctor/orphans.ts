/** Orphans: volume directories without records, records without directories, trash without records, read-only views nobody uses. */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from '../pools/pool.js';
import { errorMessage } from '../util/errors.js';
import { ok, problem, type DoctorCheck } from './check.js';

export interface OrphanInputs {
  /** Pools that are up (a pool that is down is reported by its own check). */
  pools: Pool[];
  volumes: Array<{ name: string; pool: string; access: string; mounts: number }>;
  trash: Array<{ id: string; pool: string }>;
  /** The names in a shared pool's catalog (every node's volumes). */
  sharedNames: (pool: string) => Promise<string[]>;
  /** Restores and clones that fill a volume before its record (name → pool; undefined: any pool): filling now, or cut short by a crash. */
  filling?: Map<string, string | undefined>;
  /** Where ferryd mounts read-only views of rox volumes (DATA_DIR/ro). */
  roDir: string;
  /** The text of /proc/self/mountinfo (read when not given). */
  mountinfo?: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

async function isDir(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

async function poolOrphans(pool: Pool, i: OrphanInputs): Promise<DoctorCheck[]> {
  const found: DoctorCheck[] = [];
  const records = new Set(i.volumes.filter((v) => v.pool === pool.name).map((v) => v.name));
  const known = pool.shared ? new Set(await i.sharedNames(pool.name)) : records;
  const dirs = await pool.listLive();
  for (const name of dirs) {
    if (known.has(name)) continue;
    const fill = i.filling?.has(name) && (i.filling.get(name) ?? pool.name) === pool.name;
    found.push(
      fill
        ? problem(`orphan-dir:${pool.name}/${name}`, `${pool.volumeRoot(name)} has no catalog record: a restore or clone is filling it now, or one that a crash cut short and start-up could not remove (ferryd's log says why)`, `nothing, if a restore or clone of ${name} runs; else restart ferryd: it removes the partial data (never adopts it), and the restore or clone can run again`)
        : pool.shared
        ? problem(`orphan-dir:${pool.name}/${name}`, `${pool.volumeRoot(name)} has no record in shared pool ${pool.name}`, `a create killed between its rename into place and its record left it (creates are staged, so this window is tiny), or an older ferryd is creating it right now: if no node is, move it out of the pool (ferryd adopts directories only in local pools)`)
        : problem(`orphan-dir:${pool.name}/${name}`, `${pool.volumeRoot(name)} has no catalog record`, `restart ferryd to adopt it as a volume (labelled ferry.recovered=true), or move it out of the pool`),
    );
  }
  for (const name of records) {
    if (await isDir(pool.mountpoint(name))) continue;
    found.push(problem(`orphan-record:${pool.name}/${name}`, `volume ${name} has a record but its data ${pool.mountpoint(name)} is missing`, `put the data back there (e.g. from a backup); Docker cannot mount ${name} until then`));
  }
  if (!pool.shared) {
    // a shared pool's trash records live in the catalog of the node that removed the volume
    const trashIds = new Set(i.trash.filter((t) => t.pool === pool.name).map((t) => t.id));
    const trashDirs = await pool.listTrash();
    for (const id of trashDirs) {
      if (!trashIds.has(id)) found.push(problem(`orphan-trash:${pool.name}/${id}`, `trash directory ${id} in pool ${pool.name} has no trash record: it is never purged nor undeleted`, `delete it, or move it to ${pool.volumeRoot('NAME')} and restart ferryd to adopt it`));
    }
    for (const id of trashIds) {
      if (!trashDirs.includes(id)) found.push(problem(`orphan-trash-record:${pool.name}/${id}`, `trash entry ${id} has no data in pool ${pool.name}`, 'restart ferryd: it drops trash records whose data is gone'));
    }
  }
  return found.length ? found : [ok(`orphans:${pool.name}`, `pool ${pool.name}: no orphans (${dirs.length} volume director${dirs.length === 1 ? 'y' : 'ies'}, each with its record)`)];
}

/** Every orphan found, one problem each; one ok line per pool without any. */
export async function orphanChecks(i: OrphanInputs): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  for (const pool of i.pools) {
    try {
      out.push(...(await poolOrphans(pool, i)));
    } catch (err) {
      out.push(problem(`orphans:${pool.name}`, `pool ${pool.name}: could not look for orphans: ${errorMessage(err)}`, 'check the filesystem of the pool'));
    }
  }
  const mountinfo = i.mountinfo ?? (await readFile('/proc/self/mountinfo', 'utf8'));
  const inUse = new Set(i.volumes.filter((v) => v.access === 'rox' && v.mounts > 0).map((v) => join(i.roDir, v.name)));
  let views = 0;
  for (const line of mountinfo.split('\n')) {
    const mp = unescape(line.split(' ')[4] ?? '');
    if (!mp.startsWith(i.roDir + '/')) continue;
    views++;
    if (!inUse.has(mp)) out.push(problem(`stale-mount:${mp}`, `read-only view ${mp} is mounted but no container of this node uses it`, `umount ${mp}`));
  }
  if (!out.some((c) => c.check.startsWith('stale-mount:'))) out.push(ok('stale-mounts', `no stale read-only views under ${i.roDir} (${views} mounted, each in use)`));
  return out;
}
