/** The newest backup outcome per volume and target, kept across restarts (read by /metrics and the volume list). */
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import type { Quarantine } from '../util/quarantine.js';
import { errorMessage } from '../util/errors.js';

/** One backup attempt of a volume to a target, as the backup service reports it when it ends. */
export interface BackupOutcome {
  volume: string;
  /** The volume's incarnation (its createdAt): a volume removed and made again under its name starts with no backups. */
  createdAt: string;
  /** The configured target's name, else its URL. */
  target: string;
  ok: boolean;
  /** When it ended, Unix seconds. */
  at: number;
  /** Wall time of a job (absent for an attempt refused before its job started). */
  seconds?: number;
  /** Volume bytes read, bytes added to the repository (successful backups). */
  bytes?: number;
  bytesAdded?: number;
}

/** What is known of a volume's backups to one target: the newest success and whether the newest attempt failed. */
export interface TargetRecord {
  lastSuccessAt?: number;
  failing: boolean;
  /** The incarnation of the volume it is about (absent in records of files written before this was kept). */
  createdAt?: string;
}

/** Where records of files written before targets were kept (a bare time per volume) are put. */
export const UNKNOWN_TARGET = 'unknown';

/**
 * The newest backup outcome per volume and target, for the backups this ferryd ran, kept across restarts
 * in DATA_DIR/last-backups.json (`{volume: {target: {lastSuccessAt?, failing, createdAt}}}`; the older
 * `{volume: seconds}` is read as target "unknown"). /metrics and the volume list read it from here, for
 * the incarnation of the volume they show: a volume made again under an old name has no backups yet.
 */
export class BackupHistory {
  private readonly records = new Map<string, Map<string, TargetRecord>>();
  private saving: Promise<void> = Promise.resolve();
  private changes = 0;

  constructor(private readonly opts: { file?: string; quarantine?: Quarantine; onError?: (what: string, err: string) => void } = {}) {}

  /** Changes with every outcome recorded (listings made at one version are right while it holds). */
  get version(): number {
    return this.changes;
  }

  async load(): Promise<void> {
    const file = this.opts.file;
    if (!file) return;
    try {
      const saved = await readJson<unknown>(file);
      if (saved === undefined) return;
      if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) throw new Error('not an object of volumes');
      for (const [volume, v] of Object.entries(saved)) {
        if (typeof v === 'number' && Number.isFinite(v)) this.of(volume).set(UNKNOWN_TARGET, { lastSuccessAt: v, failing: false });
        else if (typeof v === 'object' && v !== null) {
          for (const [target, r] of Object.entries(v as Record<string, unknown>)) {
            const rec = r as { lastSuccessAt?: unknown; failing?: unknown; createdAt?: unknown } | null;
            if (typeof rec !== 'object' || rec === null) continue;
            const at = typeof rec.lastSuccessAt === 'number' && Number.isFinite(rec.lastSuccessAt) ? rec.lastSuccessAt : undefined;
            this.of(volume).set(target, { ...(at !== undefined ? { lastSuccessAt: at } : {}), failing: rec.failing === true, ...(typeof rec.createdAt === 'string' ? { createdAt: rec.createdAt } : {}) });
          }
        }
      }
      this.changes++;
    } catch (err) {
      const assumed = 'The last-backup metrics start empty: ferry_volume_last_backup_timestamp_seconds has no value for a volume until its next backup by this ferryd.';
      if (this.opts.quarantine) await this.opts.quarantine.moveAside(file, err, assumed).catch((e: unknown) => this.opts.onError?.(`cannot move ${file} aside`, errorMessage(e)));
      else this.opts.onError?.(`cannot read ${file}; last-backup metrics start empty`, errorMessage(err));
    }
  }

  private of(volume: string): Map<string, TargetRecord> {
    let m = this.records.get(volume);
    if (!m) this.records.set(volume, (m = new Map()));
    return m;
  }

  record(o: BackupOutcome): void {
    const byTarget = this.of(o.volume);
    // what is known of an earlier volume of this name is forgotten at the first backup of the new one
    for (const [t, r] of byTarget) if (r.createdAt !== o.createdAt) byTarget.delete(t);
    const prev = byTarget.get(o.target);
    byTarget.set(o.target, o.ok ? { lastSuccessAt: o.at, failing: false, createdAt: o.createdAt } : { ...(prev?.lastSuccessAt !== undefined ? { lastSuccessAt: prev.lastSuccessAt } : {}), failing: true, createdAt: o.createdAt });
    this.changes++;
    const file = this.opts.file;
    if (!file) return;
    const snapshot = Object.fromEntries([...this.records].map(([v, m]) => [v, Object.fromEntries(m)]));
    this.saving = this.saving.then(() => writeJsonAtomic(file, snapshot)).catch((err: unknown) => this.opts.onError?.(`cannot write ${file}`, errorMessage(err)));
  }

  /** The records of this volume (this incarnation of it, or of an unknown one from an older file), by target. */
  targets(v: { name: string; createdAt: string }): Array<[string, TargetRecord]> {
    return [...(this.records.get(v.name) ?? [])].filter(([, r]) => r.createdAt === undefined || r.createdAt === v.createdAt);
  }

  /** The newest successful backup of this volume to any target (Unix seconds), if any. */
  lastSuccess(v: { name: string; createdAt: string }): number | undefined {
    if (!this.records.has(v.name)) return undefined; // (most volumes, each of 10,000 in a list: no arrays made)
    let newest: number | undefined;
    for (const [, r] of this.targets(v)) if (r.lastSuccessAt !== undefined && (newest === undefined || r.lastSuccessAt > newest)) newest = r.lastSuccessAt;
    return newest;
  }

  /** The targets whose newest backup of this volume failed (a success to the target clears it). */
  failing(v: { name: string; createdAt: string }): string[] {
    if (!this.records.has(v.name)) return [];
    return this.targets(v)

      .filter(([, r]) => r.failing)
      .map(([t]) => t)
      .sort();
  }

  /** Wait for a pending write (at shutdown). */
  flush(): Promise<void> {
    return this.saving;
  }
}
