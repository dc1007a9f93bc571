/** The read side of the catalog: a record as callers see it (VolumeInfo), and the lists of every volume that the listings, the usage tracker and the metrics read. */
import { join } from 'node:path';
import type { Catalog, VolumeRecord } from '../catalog/catalog.js';
import type { Volume } from '../wire/types.js';
import type { Pool } from '../pools/pool.js';
import { accessOf } from './access.js';

/** A volume as the service gives it: the API's Volume (one type for the daemon, the CLI and the UI). */
export type VolumeInfo = Volume;

/** What the listing needs of the volume service. */
export interface ListingContext {
  readonly catalog: Catalog;
  pool(name: string): Pool;
  isShared(pool: string): boolean;
  /** A managed plugin's propagatedMount (see ServiceDeps.mountRoot). */
  readonly mountRoot?: string | undefined;
  /** Where read-only views of rox volumes are mounted (see ServiceDeps.roDir). */
  readonly roDir?: string | undefined;
}

export class Listing {
  private sorted: { at: number; names: string[] } | undefined;

  constructor(private readonly c: ListingContext) {}

  info(rec: VolumeRecord): VolumeInfo {
    const mountIds = Object.keys(rec.mounts);
    const v: VolumeInfo = {
      name: rec.name,
      pool: rec.pool,
      mountpoint: this.mountpointOf(rec),
      createdAt: rec.createdAt,
      node: rec.node,
      options: rec.options,
      labels: rec.labels,
      access: accessOf(rec),
      shared: this.c.isShared(rec.pool),
      mounts: mountIds.length,
      mountIds,
    };
    if (rec.docker) v.docker = rec.docker;
    return v;
  }

  /** Where Docker finds the data: the pool's directory, or for rox volumes the node's read-only view of it. */
  mountpointOf(rec: VolumeRecord): string {
    if (this.c.mountRoot) return join(this.c.mountRoot, rec.name);
    if (accessOf(rec) === 'rox' && this.c.roDir) return join(this.c.roDir, rec.name);
    return this.c.pool(rec.pool).mountpoint(rec.name);
  }

  list(): VolumeInfo[] {
    return [...this.listEach()];
  }

  /**
   * The volumes as `list()` gives them, each made when it is reached: a caller that is done with one before it
   * takes the next (the encoded lists of 10,000 volumes) never holds them all, so none lives long enough to be
   * promoted out of the young generation.
   */
  *listEach(): Generator<VolumeInfo> {
    const volumes = this.c.catalog.volumes;
    for (const name of this.sortedNames()) {
      const rec = volumes.get(name);
      if (rec) yield this.info(rec); // (a caller that waits between volumes may see one removed meanwhile)
    }
  }

  /**
   * The volumes' names in `list()`'s order, each with its record's stamp (Catalog.stampOf): a caller that kept
   * what it made of a volume at a stamp makes it again (of `info`) only when the stamp moved.
   */
  *listStamps(): Generator<[name: string, stamp: number]> {
    const catalog = this.c.catalog;
    for (const name of this.sortedNames()) {
      const stamp = catalog.stampOf(name);
      if (stamp > 0) yield [name, stamp];
      // 0: removed meanwhile. (Every record is stamped when it changes and when it is loaded; one that were not
      // would still be listed, as NaN, which equals no stamp kept: made every time.)
      else if (catalog.volumes.has(name)) yield [name, NaN];
    }
  }

  /** The names, sorted again only when a volume came or went (not at a Mount: 10,000 names sort in ~5 ms). */
  private sortedNames(): readonly string[] {
    const at = this.c.catalog.volumes.keysVersion;
    if (this.sorted?.at !== at) this.sorted = { at, names: this.c.catalog.volumes.keys().sort((a, b) => a.localeCompare(b)) };
    return this.sorted.names;
  }

  /** The names of the volumes, in no order. */
  names(): string[] {
    return this.c.catalog.volumes.values().map((r) => r.name);
  }

  /** Each volume's creation time (its incarnation), by name: the strings of the records, no copies. */
  incarnations(): Map<string, string> {
    return new Map(this.c.catalog.volumes.values().map((r) => [r.name, r.createdAt]));
  }

  /** Does any volume have a Docker mount on this node? */
  anyMounted(): boolean {
    return this.c.catalog.volumes.values().some((r) => hasKeys(r.mounts));
  }

  counts(): { volumes: number; mounted: number; mounts: number; trash: number } {
    const vols = this.c.catalog.volumes.values();
    const mounts = vols.map((v) => Object.keys(v.mounts).length);
    return {
      volumes: vols.length,
      mounted: mounts.filter((n) => n > 0).length,
      mounts: mounts.reduce((a, b) => a + b, 0),
      trash: this.c.catalog.trash.size,
    };
  }
}

/** (an object's keys, without making their array: asked of 10,000 records at a time) */
function hasKeys(o: object): boolean {
  for (const k in o) if (Object.hasOwn(o, k)) return true;
  return false;
}
