// The space each volume takes (data, snapshots, trash), measured in the background and cached: no request walks a tree.
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { VolumeInfo, VolumeService } from './service.js';
import type { VolumeRecord } from './catalog.js';
import type { TrashUsage, VolumeUsage } from './usage-types.js';
import { snapshotSpace, type SnapshotSpace, type SpaceCache } from '../snapshots/space.js';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import { errorMessage, isErrno } from '../util/errors.js';

export type { VolumeUsage, TrashUsage } from './usage-types.js';

interface DataEntry {
  bytes: number;
  at: string;
  /** The data directory's inode when walked: a restore swaps the directory, so another inode means walk again. */
  ino: number;
  /** Mounted when walked: after the unmount, walk once more (the containers' last writes). */
  mounted: boolean;
}

interface Saved {
  v: 1;
  data: Record<string, DataEntry>;
  trash: Record<string, number>;
}

export interface UsageOptions {
  /** How often the background pass looks at every volume (a stat or two each; walks only what may have changed). */
  tickMs?: number;
  /** A mounted volume's data is walked again when its walk is older than this. */
  refreshMs?: number;
}

/**
 * Data bytes: a `du`-like walk of the live data, cached per volume (and in DATA_DIR/usage.json across
 * restarts), refreshed by a background pass when the volume may have changed: never walked, restored
 * (another data inode), unmounted since the walk, or mounted and the walk older than refreshMs.
 * Snapshot bytes: from the manifests (snapshots/space.ts), re-read when the snapshots directory changed.
 * Trash bytes: one walk per trash entry (a removed volume does not change).
 */
export class UsageTracker {
  private readonly data = new Map<string, DataEntry>();
  private readonly snaps = new Map<string, { sig: string; space: SnapshotSpace; cache: SpaceCache }>();
  private readonly trash = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;

  constructor(
    private readonly volumes: VolumeService,
    private readonly listSnapshots: (volume: string) => Promise<Array<{ id: string; method: string }>>,
    private readonly file: string,
    private readonly log: Logger,
    private readonly opts: UsageOptions = {},
  ) {}

  /** Read what was measured before a restart (a cache: a bad file only means measuring again). */
  async load(): Promise<void> {
    try {
      const saved = await readJson<Saved>(this.file);
      if (saved?.v !== 1) return;
      for (const [k, e] of Object.entries(saved.data ?? {})) if (typeof e?.bytes === 'number' && typeof e.ino === 'number') this.data.set(k, e);
      for (const [k, b] of Object.entries(saved.trash ?? {})) if (typeof b === 'number') this.trash.set(k, b);
    } catch (err) {
      this.log.warn({ file: this.file, err: errorMessage(err) }, 'usage cache unreadable; measuring again');
    }
  }

  start(): void {
    const tick = () => void this.pass().catch((err) => this.log.warn({ err: errorMessage(err) }, 'usage pass failed'));
    tick();
    this.timer = setInterval(tick, this.opts.tickMs ?? 30_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    await this.save();
  }

  /** What is known now (no I/O). */
  of(v: VolumeInfo): VolumeUsage {
    const d = this.data.get(key(v));
    const s = this.snaps.get(key(v))?.space;
    return {
      dataBytes: d?.bytes ?? null,
      measuredAt: d?.at ?? null,
      snapshotBytes: s ? s.bytes : null,
      snapshots: s?.count ?? 0,
      ...(s?.note ? { snapshotNote: s.note } : !s ? { snapshotNote: 'not measured yet' } : {}),
      trashBytes: this.trashBytesOf(v.name),
    };
  }

  trashOf(id: string): TrashUsage {
    return { bytes: this.trash.get(id) ?? null };
  }

  /** Trash bytes per removed volume name and pool (measured entries only), for /metrics. */
  trashByName(): Array<{ volume: string; pool: string; bytes: number }> {
    const out = new Map<string, { volume: string; pool: string; bytes: number }>();
    for (const t of this.volumes.trashList()) {
      const b = this.trash.get(t.id);
      if (b === undefined) continue;
      const k = `${t.name}\0${t.pool}`;
      out.set(k, { volume: t.name, pool: t.pool, bytes: (out.get(k)?.bytes ?? 0) + b });
    }
    return [...out.values()];
  }

  private trashBytesOf(name: string): number | null {
    let sum = 0;
    for (const t of this.volumes.trashList()) {
      if (t.name !== name) continue;
      const b = this.trash.get(t.id);
      if (b === undefined) return null;
      sum += b;
    }
    return sum;
  }

  /** Measure one volume now, data and snapshots (`inspect --usage`, `?usage=true`). */
  async refresh(name: string): Promise<VolumeUsage> {
    const v = this.volumes.get(name);
    await this.measure(v, true);
    await this.measureTrash();
    await this.save();
    return this.of(this.volumes.get(name));
  }

  /** Measure the trash entries not measured yet, now. */
  async measureTrash(): Promise<void> {
    const live = new Set<string>();
    for (const t of this.volumes.trashList()) {
      live.add(t.id);
      if (this.trash.has(t.id)) continue;
      try {
        this.trash.set(t.id, await this.volumes.poolOf({ pool: t.pool } as VolumeRecord).trashUsage(t.id));
        this.dirty = true;
      } catch (err) {
        this.log.debug({ trash: t.id, err: errorMessage(err) }, 'could not measure a trash entry');
      }
    }
    for (const id of this.trash.keys()) if (!live.has(id)) (this.trash.delete(id), (this.dirty = true));
  }

  /** One background pass over every volume and the trash; a pass asked for while one runs shares it. */
  pass(): Promise<void> {
    return (this.running ??= (async () => {
      const vols = this.volumes.list();
      for (const v of vols) {
        try {
          await this.measure(v, false);
        } catch (err) {
          this.log.debug({ volume: v.name, err: errorMessage(err) }, 'could not measure a volume');
        }
      }
      const keys = new Set(vols.map(key));
      for (const k of this.data.keys()) if (!keys.has(k)) (this.data.delete(k), (this.dirty = true));
      for (const k of this.snaps.keys()) if (!keys.has(k)) this.snaps.delete(k);
      await this.measureTrash();
      await this.save();
    })().finally(() => (this.running = undefined)));
  }

  private async measure(v: VolumeInfo, force: boolean): Promise<void> {
    const k = key(v);
    const rec = this.volumes.recordOf(v.name);
    const pool = this.volumes.poolOf(rec);
    // a shared pool is asked first, through its deadline (pools/share-io.ts): a hung share is skipped, not walked
    if (pool.shared) await pool.checkAvailable();
    let ino: number;
    try {
      ino = (await lstat(pool.mountpoint(v.name))).ino;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    const d = this.data.get(k);
    const mounted = v.mounts > 0;
    const stale = !d || d.ino !== ino || (d.mounted && !mounted) || (mounted && Date.now() - Date.parse(d.at) >= (this.opts.refreshMs ?? 5 * 60_000));
    if (force || stale) {
      const at = new Date().toISOString();
      const bytes = await pool.usage(v.name);
      this.data.set(k, { bytes, at, ino, mounted });
      this.dirty = true;
    }
    const dir = join(pool.volumeRoot(v.name), 'snapshots');
    const sig = await signature(dir);
    const s = this.snaps.get(k);
    if (force || !s || s.sig !== sig) {
      const cache: SpaceCache = s?.cache ?? new Map();
      const list = sig ? await this.listSnapshots(v.name) : [];
      this.snaps.set(k, { sig, space: await snapshotSpace(dir, list, cache), cache });
    }
  }

  private async save(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const saved: Saved = { v: 1, data: Object.fromEntries(this.data), trash: Object.fromEntries(this.trash) };
    await writeJsonAtomic(this.file, saved).catch((err) => this.log.warn({ file: this.file, err: errorMessage(err) }, 'could not write the usage cache'));
  }
}

/** One incarnation of a volume name. */
const key = (v: { name: string; createdAt: string }) => `${v.name}\0${v.createdAt}`;

/** Changes when a snapshot is made or removed, or a manifest rewritten (all of which rename or unlink in the directory). */
async function signature(dir: string): Promise<string> {
  try {
    const st = await stat(dir);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    return `${st.mtimeMs}:${names.join(',')}`;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return '';
    throw err;
  }
}
