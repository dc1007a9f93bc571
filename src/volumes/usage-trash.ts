// The space each entry of the trash takes: one walk per entry (a removed volume does not change), summed per volume name.
import type { Logger } from 'pino';
import type { VolumeService } from './service.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import type { TrashUsage } from './usage-types.js';
import { errorMessage } from '../util/errors.js';

/** What of the volumes the trash's sizes need: its entries, their pools, and a version that changes with them. */
export type TrashSource = Pick<VolumeService, 'trashList' | 'poolOf' | 'version'>;

export class TrashSizes {
  private readonly bytes = new Map<string, number>();
  private sums: { catalog: number; own: number; byName: Map<string, number | null> } | undefined;
  private changes = 0;

  constructor(
    private readonly volumes: TrashSource,
    private readonly log: Logger,
  ) {}

  /** The sizes measured before a restart (usage.json's `trash`). */
  seed(saved: Record<string, unknown>): void {
    for (const [id, b] of Object.entries(saved)) if (typeof b === 'number') this.bytes.set(id, b);
    this.changes++;
  }

  /** What to save: bytes per trash entry id. */
  saved(): Record<string, number> {
    return Object.fromEntries(this.bytes);
  }

  of(id: string): TrashUsage {
    return { bytes: this.bytes.get(id) ?? null };
  }

  /** Bytes per removed volume name and pool (measured entries only), for /metrics. */
  byName(): Array<{ volume: string; pool: string; bytes: number }> {
    const out = new Map<string, { volume: string; pool: string; bytes: number }>();
    for (const t of this.volumes.trashList()) {
      const b = this.bytes.get(t.id);
      if (b === undefined) continue;
      const k = `${t.name}\0${t.pool}`;
      out.set(k, { volume: t.name, pool: t.pool, bytes: (out.get(k)?.bytes ?? 0) + b });
    }
    return [...out.values()];
  }

  /** The trash bytes of a volume name, null while an entry of it is not measured yet (asked for every volume of a list: summed once per version). */
  sumOf(name: string): number | null {
    const catalog = this.volumes.version;
    let s = this.sums;
    if (s?.catalog !== catalog || s.own !== this.changes) {
      const byName = new Map<string, number | null>();
      for (const e of this.volumes.trashList()) {
        const b = this.bytes.get(e.id);
        const cur = byName.get(e.name);
        byName.set(e.name, b === undefined || cur === null ? null : (cur ?? 0) + b);
      }
      this.sums = s = { catalog, own: this.changes, byName };
    }
    return s.byName.get(name) ?? 0;
  }

  /** Measure the entries not measured yet and forget the ones gone; true if a figure changed. */
  async measure(): Promise<boolean> {
    const before = this.changes;
    const live = new Set<string>();
    for (const t of this.volumes.trashList()) {
      live.add(t.id);
      if (this.bytes.has(t.id)) continue;
      try {
        this.bytes.set(t.id, await this.volumes.poolOf({ pool: t.pool } as VolumeRecord).trashUsage(t.id));
        this.changes++;
      } catch (err) {
        this.log.debug({ trash: t.id, err: errorMessage(err) }, 'could not measure a trash entry');
      }
    }
    for (const id of this.bytes.keys()) if (!live.has(id)) (this.bytes.delete(id), this.changes++);
    return this.changes !== before;
  }
}
