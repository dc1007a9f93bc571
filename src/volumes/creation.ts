/** Making a volume's directory and record: in a local pool, or in a shared pool where another host may make the same name at the same moment; a failed create leaves nothing behind. */
import type { Logger } from 'pino';
import type { Catalog, DockerKnown, VolumeRecord } from '../catalog/catalog.js';
import type { Cluster } from '../cluster/cluster.js';
import type { SharedRecord, SharedStore } from '../cluster/shared-store.js';
import type { Pool } from '../pools/pool.js';
import { fillFrom } from '../pools/image-fs.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { mapNoSpace } from '../util/no-space.js';
import type { VolumeOptions } from './options.js';
import { sharedPart } from './shared-cache.js';
import { stagingId } from './staging.js';
import { faultAt, pauseAt } from '../util/test-pause.js';

/** Where a clone starts: the source snapshot's pool, and how to copy the snapshot into the new data directory. */
export interface CloneSource {
  pool: string;
  copyTo: (dest: string) => Promise<void>;
}

/** What a create makes: the name, its checked options (with the pool), labels, and how the data starts. */
export interface NewVolume {
  name: string;
  /** The pool it goes to (the options name it only when the user did). */
  pool: string;
  opts: VolumeOptions;
  labels: Record<string, string>;
  /** A clone: the snapshot copied into the new data directory. */
  source?: CloneSource | undefined;
  /** A restore: fills the new, empty data directory. */
  fill?: ((dir: string) => Promise<void>) | undefined;
  /** Create's Opts as Docker sent them. */
  docker?: DockerKnown | undefined;
}

/** What creation needs of the volume service. */
export interface CreationContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly node: string;
  readonly now: () => number;
  readonly cluster?: Cluster;
  pool(name: string): Pool;
}

export class Creation {
  constructor(private readonly c: CreationContext) {}

  private recordOf(v: NewVolume): VolumeRecord {
    return { name: v.name, pool: v.pool, createdAt: new Date(this.c.now()).toISOString(), node: this.c.node, options: v.opts, labels: v.labels, mounts: {}, ...(v.docker ? { docker: v.docker } : {}) };
  }

  private static what(v: NewVolume): string {
    return `${v.source ? 'cloning' : v.fill ? 'restoring' : 'creating'} volume ${v.name}`;
  }

  /**
   * Create in a local pool (callers hold the name's lock): the directory, filled, then its record. A create that
   * fills its volume (a restore, a clone) is marked first: a crash before its record leaves part of the data,
   * which start-up then discards rather than adopts (recovery.ts).
   */
  async local(v: NewVolume): Promise<VolumeRecord> {
    if (!v.fill && !v.source) return this.localUnmarked(v);
    await this.c.catalog.filling.mark(v.name, v.pool);
    try {
      return await this.localUnmarked(v);
    } finally {
      await this.c.catalog.filling.clear(v.name).catch((err) => this.c.log.warn({ volume: v.name, err: errorMessage(err) }, 'could not remove the marker of a create that filled its volume'));
    }
  }

  private async localUnmarked(v: NewVolume): Promise<VolumeRecord> {
    const { name } = v;
    const poolName = v.pool;
    const pool = this.c.pool(poolName);
    const what = Creation.what(v);
    if (!v.fill) {
      // the record is written and fsynced while the directory is made and flushed; renamed into place after
      let made = false;
      const dir = mapNoSpace(poolName, pool.root, what, () => pool.create(name, v.opts, v.source?.copyTo)).then(async () => {
        made = true;
        await pauseAt('create-before-record'); // (a crash test: the directory on disk, the record staged or not)
      });
      const rec = this.recordOf(v);
      try {
        await this.c.catalog.volumes.saveAfter(name, rec, dir);
      } catch (err) {
        if (made) await this.discardNew(poolName, name); // no directory without a record, adopted at the next start
        throw err;
      }
      this.c.log.info({ volume: name, pool: poolName, options: v.opts }, 'volume created');
      return rec;
    }
    await mapNoSpace(poolName, pool.root, what, () => pool.create(name, v.opts, v.source?.copyTo));
    if (v.fill) await mapNoSpace(poolName, pool.root, what, () => this.fillOrUndo(poolName, name, v.fill!));
    await pauseAt('create-filled'); // (a crash test: the data filled, no record yet)
    const rec = this.recordOf(v);
    try {
      await this.c.catalog.volumes.save(name, rec);
    } catch (err) {
      await this.discardNew(poolName, name); // no directory without a record, adopted at the next start
      throw err;
    }
    this.c.log.info({ volume: name, pool: poolName, options: v.opts }, 'volume created');
    return rec;
  }

  /**
   * Create in a shared pool, where another host may create the same name at the same moment. The volume is
   * made (and filled, for a clone or a restore) in a staging directory of this ferryd's own, out of sight;
   * the rename into place decides who creates, and the record published with link(2) makes it visible. So
   * a create killed mid-way leaves a staging directory (swept by SharedCache.sweepStaging), never a volume
   * directory without a record that would block the name on every host. The loser waits for the winner's
   * record: same options and `ifMissing` (Docker's Create) is a success, anything else an `exists` error.
   */
  async shared(v: NewVolume, ifMissing: boolean): Promise<VolumeRecord> {
    const { name, fill } = v;
    const poolName = v.pool;
    const cluster = this.c.cluster!;
    const store = await cluster.store(poolName);
    const pool = this.c.pool(poolName);
    try {
      if (await pool.hasLive(name)) throw new FerryError('exists', `pool ${poolName} already holds a directory for volume ${name}`);
      const stageId = stagingId(cluster.instance);
      await mapNoSpace(poolName, pool.root, Creation.what(v), async () => {
        // a `exists` from the restore must not look like a name clash
        const filling = fill && ((dir: string) => fill(dir).catch((err: unknown) => Promise.reject(err instanceof FerryError && err.code === 'exists' ? new FerryError('internal', err.message) : err)));
        try {
          await pool.createStaged(stageId, v.opts, v.source?.copyTo, filling);
          await pool.commitStaged(stageId, name);
        } catch (err) {
          await pool.discardStaged(stageId).catch((e) => this.c.log.error({ volume: name, pool: poolName, stage: stageId, err: errorMessage(e) }, 'could not remove the staging directory of a failed create'));
          throw err;
        }
      });
    } catch (err) {
      if (!(err instanceof FerryError && err.code === 'exists')) throw err;
      let theirs: SharedRecord | undefined;
      for (const deadline = this.c.now() + 15_000; !(theirs = await store.read(name)) && this.c.now() < deadline; ) await sleep(100);
      if (!theirs) {
        throw new FerryError('exists', `pool ${poolName} holds a directory for ${name} without a record: a create on another node is in progress or crashed; retry, or look at ${pool.volumeRoot(name)}`);
      }
      const rec: VolumeRecord = { ...theirs, mounts: {} };
      this.c.catalog.volumes.put(name, rec);
      const same = sameOptions(theirs, v.opts, poolName);
      if (ifMissing && same) return rec;
      throw existsError(name, theirs.node, !same);
    }
    // (another node's cached name of the directory may still lead to an earlier volume of this name: see data-id.ts)
    const dirIno = await pool.dirIno?.(name).catch(() => undefined);
    const rec: VolumeRecord = { ...this.recordOf(v), ...(dirIno ? { dirIno } : {}) };
    let published: boolean;
    try {
      published = await store.publish(sharedPart(rec));
      faultAt('create-after-publish'); // a share that linked the record but answered too late
    } catch (err) {
      published = await this.publishedAfterAll(store, rec, poolName, err);
    }
    if (!published) {
      // a record whose directory had vanished: leave it for the operator, take back what was just made
      await this.discardNew(poolName, name);
      throw new FerryError('exists', `pool ${poolName} already has a record for ${name}; remove it first (\`ferry volume rm ${name}\`)`);
    }
    this.c.catalog.volumes.put(name, rec);
    this.c.log.info({ volume: name, pool: poolName, options: v.opts }, 'volume created in a shared pool');
    return rec;
  }

  /**
   * A publish that failed may have linked the record before its error (a share's deadline passed under load):
   * read back what is there. Ours: the create stands. None or another's: the directory goes (no directory
   * without a record for other hosts to wait on), and the error stands. Unreadable: nobody can tell, so the
   * directory is kept (a record may point at it; `ferry doctor` reports a directory without a record).
   */
  private async publishedAfterAll(store: SharedStore, rec: VolumeRecord, poolName: string, err: unknown): Promise<true> {
    let there: SharedRecord | undefined;
    try {
      there = await store.read(rec.name);
    } catch (e) {
      this.c.log.error({ volume: rec.name, pool: poolName, err: errorMessage(err), readBack: errorMessage(e) }, 'a create could not publish its record nor read it back: its directory is kept');
      throw new FerryError(
        'unavailable',
        `creating volume ${rec.name} in pool ${poolName}: publishing its record failed (${errorMessage(err)}) and the share could not tell whether it landed (${errorMessage(e)}); its directory is kept: when the share answers, \`ferry volume inspect ${rec.name}\` shows whether it exists (\`ferry doctor\` reports a directory without a record)`,
      );
    }
    if (there && there.createdAt === rec.createdAt && there.node === rec.node) {
      this.c.log.warn({ volume: rec.name, pool: poolName, err: errorMessage(err) }, 'publishing a record reported an error, but the record is there: the create stands');
      return true;
    }
    await this.discardNew(poolName, rec.name);
    throw err;
  }

  /** Delete a volume directory this call has just made (nothing else refers to it yet). */
  private async discardNew(poolName: string, name: string): Promise<void> {
    const pool = this.c.pool(poolName);
    const trashId = `${name}@${this.c.now()}`;
    await pool
      .moveToTrash(name, trashId)
      .then(() => pool.purgeTrash(trashId))
      .catch((e) => this.c.log.error({ volume: name, pool: poolName, err: errorMessage(e) }, 'could not remove a volume directory left by a failed create'));
  }

  /** Fill a just-made volume (a restore); if that fails, the volume goes away again: nothing half-done. */
  private async fillOrUndo(poolName: string, name: string, fill: (dir: string) => Promise<void>): Promise<void> {
    const pool = this.c.pool(poolName);
    try {
      // an image volume is filled through its mounted filesystem, beside the lost+found that mkfs left at its top
      // (a restore wants an empty directory, and a backup of an image volume holds a lost+found of its own)
      await pool.attach?.(name);
      try {
        await (pool.attach ? fillFrom(pool.mountpoint(name), fill) : fill(pool.mountpoint(name)));
      } finally {
        await pool.detach?.(name);
      }
    } catch (err) {
      await this.discardNew(poolName, name);
      // a `exists` from the restore must not look like a name clash to a shared create
      if (err instanceof FerryError && err.code === 'exists') throw new FerryError('internal', err.message);
      throw err;
    }
  }
}

/**
 * The refusal of a create whose name is taken. On a shared pool it names the node that made the volume, whichever
 * way the race was lost (its record seen before the create, or its directory found during it).
 */
export function existsError(name: string, node: string | undefined, otherOptions: boolean): FerryError {
  const detail = node === undefined ? (otherOptions ? ' with other options' : '') : ` (created on node ${node}${otherOptions ? ' with other options' : ''})`;
  return new FerryError('exists', `volume ${name} already exists${detail}; remove it first or pick another name`);
}

/** Does an existing record have these options (a repeated Docker Create of the same volume)? */
export function sameOptions(rec: { options: VolumeOptions; pool: string }, opts: VolumeOptions, pool: string): boolean {
  return JSON.stringify({ ...rec.options, pool: rec.pool }) === JSON.stringify({ ...opts, pool });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
