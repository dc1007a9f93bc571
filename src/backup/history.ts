import { readJson, writeJsonAtomic } from '../util/atomic.js';
import type { Quarantine } from '../util/quarantine.js';
import { errorMessage } from '../util/errors.js';

/** One backup attempt of a volume to a target, as the backup service reports it when it ends. */
export interface BackupOutcome {
  volume: string;
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
}

/** Where records of files written before targets were kept (a bare time per volume) are put. */
export const UNKNOWN_TARGET = 'unknown';

/**
 * The newest backup outcome per volume and target, for the backups this ferryd ran, kept across restarts
 * in DATA_DIR/last-backups.json (`{volume: {target: {lastSuccessAt?, failing}}}`; the older
 * `{volume: seconds}` is read as target "unknown"). /metrics and the volume list read it from here.
 */
export class BackupHistory {
  private readonly records = new Map<string, Map<string, TargetRecord>>();
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly opts: { file?: string; quarantine?: Quarantine; onError?: (what: string, err: string) => void } = {}) {}

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
            const rec = r as { lastSuccessAt?: unknown; failing?: unknown } | null;
            if (typeof rec !== 'object' || rec === null) continue;
            const at = typeof rec.lastSuccessAt === 'number' && Number.isFinite(rec.lastSuccessAt) ? rec.lastSuccessAt : undefined;
            this.of(volume).set(target, { ...(at !== undefined ? { lastSuccessAt: at } : {}), failing: rec.failing === true });
          }
        }
      }
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
    const prev = byTarget.get(o.target);
    byTarget.set(o.target, o.ok ? { lastSuccessAt: o.at, failing: false } : { ...(prev?.lastSuccessAt !== undefined ? { lastSuccessAt: prev.lastSuccessAt } : {}), failing: true });
    const file = this.opts.file;
    if (!file) return;
    const snapshot = Object.fromEntries([...this.records].map(([v, m]) => [v, Object.fromEntries(m)]));
    this.saving = this.saving.then(() => writeJsonAtomic(file, snapshot)).catch((err: unknown) => this.opts.onError?.(`cannot write ${file}`, errorMessage(err)));
  }

  /** Records by volume, then target. */
  all(): ReadonlyMap<string, ReadonlyMap<string, TargetRecord>> {
    return this.records;
  }

  /** The newest successful backup of a volume to any target (Unix seconds), if any. */
  lastSuccess(volume: string): number | undefined {
    let newest: number | undefined;
    for (const r of this.records.get(volume)?.values() ?? []) if (r.lastSuccessAt !== undefined && (newest === undefined || r.lastSuccessAt > newest)) newest = r.lastSuccessAt;
    return newest;
  }

  /** Wait for a pending write (at shutdown). */
  flush(): Promise<void> {
    return this.saving;
  }
}
