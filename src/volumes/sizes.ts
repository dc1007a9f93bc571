/** Volume sizes (`-o size=`): the option, `ferry volume resize`, what a volume's limit and use are, and the check that no limit silently stops applying. */
import type { Logger } from 'pino';
import type { Catalog, VolumeRecord } from '../catalog/catalog.js';
import type { Pool } from '../pools/pool.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { parseSize, sizeText } from '../util/size.js';
import type { VolumeSize } from '../wire/types.js';
import { checkVolumeName } from './names.js';
import type { OptionSet } from './options.js';

/** `-o size=10G`: stored in the record as bytes. Whether the pool can enforce it is the pool's to say, at create. */
export const sizeOptions: OptionSet<'size'> = {
  parsers: { size: (v, k) => parseSize(v, `option ${k}`) },
};

/** What the sizes need of the volume service. */
export interface SizesContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly lock: KeyedLock;
  pool(name: string): Pool;
  isShared(pool: string): boolean;
  /** Run `fn` while this node may attach the volume (a shared image's one host at a time: Handshake.holdExclusive). */
  holdExclusive<T>(rec: VolumeRecord, what: string, fn: () => Promise<T>): Promise<T>;
}

/** How old a measurement Docker's `Get` may be answered with (one `docker run` calls Get several times). */
const GET_MAX_AGE_MS = 1_000;

export class VolumeSizes {
  private readonly cache = new Map<string, { at: number; size: VolumeSize }>();

  constructor(private readonly c: SizesContext) {}

  private record(name: string): VolumeRecord {
    const rec = this.c.catalog.volumes.get(checkVolumeName(name));
    if (!rec) throw new FerryError('not_found', `no such volume: ${name}`);
    return rec;
  }

  /**
   * The limit of a volume made with `size=` and what counts against it; undefined for one without. A limit the
   * filesystem no longer enforces as recorded (quotas turned off, a subvolume replaced behind ferryd's back) is
   * set again, logged, and reported in `problem`: a limit never stops applying silently.
   */
  async of(name: string, { maxAgeMs = 0 }: { maxAgeMs?: number } = {}): Promise<VolumeSize | undefined> {
    const rec = this.record(name);
    const limit = rec.options.size;
    if (limit === undefined) return undefined;
    const hit = this.cache.get(name);
    if (hit && hit.size.limitBytes === limit && Date.now() - hit.at <= maxAgeMs) return hit.size;
    const pool = this.c.pool(rec.pool);
    let size: VolumeSize;
    try {
      const s = await pool.sizeLimits.read(pool.mountpoint(rec.name));
      size = { limitBytes: limit, enforcedBytes: s.enforcedBytes, usedBytes: s.usedBytes };
    } catch (err) {
      return { limitBytes: limit, enforcedBytes: null, usedBytes: null, problem: `could not read the limit of the filesystem: ${errorMessage(err)}` };
    }
    if (size.enforcedBytes !== limit) size = await this.c.lock.run(rec.name, () => this.enforce(rec.name, 'found when asked'));
    this.cache.set(name, { at: Date.now(), size });
    return size;
  }

  /** For Docker's Get: a measurement up to 1 s old (one `docker run` asks several times). */
  forGet(name: string): Promise<VolumeSize | undefined> {
    return this.of(name, { maxAgeMs: GET_MAX_AGE_MS });
  }

  /** Set the recorded limit again where the filesystem does not enforce it (callers hold the volume's lock). */
  private async enforce(name: string, when: string): Promise<VolumeSize> {
    const rec = this.record(name);
    const limit = rec.options.size!;
    const pool = this.c.pool(rec.pool);
    const data = pool.mountpoint(rec.name);
    const before = await pool.sizeLimits.read(data).catch(() => undefined);
    if (before && before.enforcedBytes === limit) return { limitBytes: limit, ...before };
    const was = before?.enforcedBytes === null || before === undefined ? 'no limit' : `a limit of ${sizeText(before.enforcedBytes)}`;
    let problem = `the filesystem enforced ${was} instead of ${sizeText(limit)} (${when})`;
    try {
      await pool.sizeLimits.apply(data, limit);
      problem += '; the limit was set again';
      this.c.log.warn({ volume: name, limit, enforced: before?.enforcedBytes ?? null }, `size limit was not enforced: ${problem}`);
    } catch (err) {
      problem += `; it could not be set again: ${errorMessage(err)}`;
      this.c.log.error({ volume: name, limit, err: errorMessage(err) }, `size limit is not enforced: ${problem}`);
    }
    const after = await pool.sizeLimits.read(data).catch(() => ({ enforcedBytes: null, usedBytes: null }));
    return { limitBytes: limit, ...after, problem };
  }

  /**
   * `ferry volume resize NAME SIZE`: a new limit, refused below what the volume uses now (snapshots do not
   * count). Enforced first, then written in the record's options, so it holds after a restart and is what a
   * restore, an undelete or a clone's own size start from.
   */
  async resize(name: string, sizeIn: string): Promise<VolumeSize> {
    const bytes = parseSize(sizeIn, 'size');
    return this.c.lock.run(checkVolumeName(name), async () => {
      const rec = this.record(name);
      const pool = this.c.pool(rec.pool);
      if (pool.sizeLimits.refusal) throw new FerryError('invalid', pool.sizeLimits.refusal.replace(/^option size: /, `volume ${rec.name} cannot be resized: `));
      const data = pool.mountpoint(rec.name);
      const now = await pool.sizeLimits.read(data, { enable: true });
      if (now.usedBytes !== null && now.usedBytes > bytes) {
        throw new FerryError(
          'invalid',
          `volume ${rec.name} uses ${sizeText(now.usedBytes)} (${now.usedBytes} bytes, metadata included), more than the new size ${sizeText(bytes)}; delete data in it first (its snapshots do not count), or pick a size above what it uses`,
          { usedBytes: now.usedBytes, sizeBytes: bytes },
        );
      }
      const old = rec.options.size;
      await this.c.holdExclusive(rec, `resize volume ${rec.name}`, () => pool.sizeLimits.apply(data, bytes));
      try {
        await this.c.catalog.volumes.save(rec.name, { ...rec, options: { ...rec.options, size: bytes } });
      } catch (err) {
        await pool.sizeLimits.apply(data, old).catch((e) => this.c.log.error({ volume: rec.name, err: errorMessage(e) }, 'could not set the old limit back after the record could not be written'));
        throw err;
      }
      this.cache.delete(rec.name);
      this.c.log.info({ volume: rec.name, from: old ?? null, to: bytes }, 'volume resized');
      const after = await pool.sizeLimits.read(data);
      return { limitBytes: bytes, ...after };
    });
  }

  /** Start-up: every volume with a size gets its limit set again where the filesystem lost it (logged). */
  async reconcile(): Promise<void> {
    for (const rec of this.c.catalog.volumes.values()) {
      if (rec.options.size === undefined || this.c.isShared(rec.pool)) continue;
      await this.c.lock
        .run(rec.name, () => this.enforce(rec.name, 'found at start-up'))
        .catch((err) => this.c.log.error({ volume: rec.name, err: errorMessage(err) }, 'could not check the size limit of a volume'));
    }
  }
}
