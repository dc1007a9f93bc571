/** The restore swap: a change of the live data with the volume unmounted, the data made a snapshot's (in place, or by a full copy and renames), and the change finished or undone at start-up. */
import { readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { VolumeService } from '../volumes/service.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import type { DockerClient, ContainerRef } from '../docker/client.js';
import { writeJsonAtomic, fsyncDir, syncTree } from '../util/atomic.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { removeTree } from '../pools/trees/methods.js';
import { finishInPlace, readMarkerKind, stageInPlace, stagePath } from '../pools/trees/restore.js';
import { volumeDirs, type VolumeDirs } from '../pools/layout.js';
import { noSpaceError } from '../util/no-space.js';
import { sizeText } from '../util/size.js';
import { pauseAt } from '../util/test-pause.js';
import { writeDataId } from '../pools/data-id.js';
import type { SnapshotRecord } from './record.js';

/** What the swap needs of the volume service: the record, who uses the volume, its lock and the one exclusive change. */
/** How a change of the live data (restore, checkout, reset) treats what holds the volume. */
export interface SwitchOptions {
  /** Stop the containers that use the volume here, change, start them again. */
  restartContainers?: boolean;
  /** Go on although a node that stopped sending heartbeats a short while ago had it mounted (Handshake.refuseIfUsedElsewhere). */
  force?: boolean;
}

export type SwapVolumes = Pick<VolumeService, 'node' | 'list' | 'recordOf' | 'poolOf' | 'refuseIfUsedElsewhere' | 'containersUsing' | 'withLock' | 'changeExclusively'>;

/** The swap mark in a volume's directory (`restore.json`, phase swap): which restore, started by which node. */
interface SwapMark {
  snapshot: string;
  phase: 'swap';
  node?: string;
  id?: string;
}

/** This node's note of a swap it began in a shared pool (DATADIR/restores/POOL.VOLUME.json): what start-up finishes. */
interface PendingSwap {
  pool: string;
  volume: string;
  id: string;
}

export class DataSwap {
  constructor(
    private readonly volumes: SwapVolumes,
    private readonly logger: Logger,
    private readonly docker?: DockerClient,
    /** Local directory of this node's notes of swaps begun in shared pools (set by the daemon). */
    private readonly pendingDir?: () => string | undefined,
  ) {}

  /**
   * Run a change of the live data with the volume unmounted: refuse when containers use it, or with
   * restartContainers stop them, run, and start them again (also when the change failed). `check` refuses
   * a change that cannot be made (a snapshot, commit or branch that does not exist) before any container is
   * touched: a typo must not restart a database; `fn` checks again under the volume's lock.
   */
  async switching<T>(volume: string, { restartContainers = false, force = false }: SwitchOptions, what: string, fn: (rec: VolumeRecord) => Promise<T>, check?: (rec: VolumeRecord) => Promise<unknown>): Promise<T> {
    const rec0 = this.volumes.recordOf(volume);
    await check?.(rec0);
    await this.volumes.refuseIfUsedElsewhere(rec0, what, { force });
    let stopped: ContainerRef[] | undefined;
    if (Object.keys(rec0.mounts).length > 0) {
      const known = await this.volumes.containersUsing(volume); // (undefined: no Docker to ask)
      const users = (known ?? []).filter((c) => c.state === 'running' || c.state === 'paused');
      const mounts = Object.keys(rec0.mounts).length;
      // mounted, and Docker runs no container to stop: one starting, or a mount whose Unmount never came (stale-mounts.ts)
      if (known && users.length === 0) {
        throw new FerryError('in_use', `volume ${volume} is mounted (${mounts} mount${mounts > 1 ? 's' : ''}) but no container using it runs: one is starting, or one stopped while ferryd could not hear its Unmount, a mount ferryd drops by itself within a minute or two (\`ferry volume inspect ${volume}\` shows the mounts); nothing changed, try again then`, { containers: [] });
      }
      if (!restartContainers) {
        const who = users.length ? users.map((c) => c.name).join(', ') : `${mounts} Docker mount${mounts > 1 ? 's' : ''}`;
        const them = users.length === 1 || (users.length === 0 && mounts === 1) ? 'it' : 'them';
        throw new FerryError('in_use', `volume ${volume} is in use by ${who}; stop ${them} first, or pass --restart-containers to stop ${them}, ${what} and start ${them} again`, { containers: users });
      }
      // A container started with --rm is removed by Docker when it stops: it could not be started again
      const removedOnStop: string[] = [];
      for (const c of users) if ((await this.docker!.container(c.id)).HostConfig.AutoRemove) removedOnStop.push(c.name);
      if (removedOnStop.length) {
        throw new FerryError('in_use', `volume ${volume} is in use by ${removedOnStop.join(', ')}, started with --rm: Docker removes such a container when it stops, so --restart-containers could not start it again; nothing changed. Stop it yourself, then ${what} and run it again`, { containers: users });
      }
      for (const c of users) await this.docker!.stop(c.id);
      stopped = users;
    }
    let result: T;
    try {
      const deadline = Date.now() + 30_000;
      while (stopped && Object.keys(this.volumes.recordOf(volume).mounts).length > 0) {
        if (Date.now() > deadline) {
          const left = Object.keys(this.volumes.recordOf(volume).mounts).length;
          throw new FerryError('in_use', `volume ${volume} is still mounted (${left} mount${left > 1 ? 's' : ''}) after its containers stopped: the mount of a container that stopped while ferryd could not hear its Unmount, which ferryd drops by itself a minute or two after no container uses the volume; nothing changed (the containers are started again): stop them, wait for that, then ${what}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      result = await this.volumes.withLock(volume, async () => {
        const rec = this.volumes.recordOf(volume);
        if (Object.keys(rec.mounts).length > 0) throw new FerryError('in_use', `volume ${volume} was mounted again meanwhile; nothing changed`);
        return this.volumes.changeExclusively(rec, what, () => fn(rec), { force });
      });
    } catch (err) {
      await this.startAgain(stopped ?? []); // (started again also when the change failed; its error is the one told)
      throw err;
    }
    const notStarted = await this.startAgain(stopped ?? []);
    // done, but a workload the caller asked back is down: said, not only logged
    if (notStarted.length) {
      throw new FerryError('internal', `volume ${volume}: ${what} done, but ${notStarted.map((n) => `${n.name} (${n.err})`).join(', ')} could not be started again; start ${notStarted.length > 1 ? 'them' : 'it'} with docker start`, { containers: notStarted.map((n) => n.name) });
    }
    return result;
  }

  /** Start the containers stopped for a change again; the ones that would not start, with why. */
  private async startAgain(stopped: ContainerRef[]): Promise<Array<{ name: string; err: string }>> {
    const failed: Array<{ name: string; err: string }> = [];
    for (const c of stopped) {
      try {
        await this.docker!.start(c.id);
      } catch (e) {
        this.logger.error({ container: c.name, err: errorMessage(e) }, 'could not start container again');
        failed.push({ name: c.name, err: errorMessage(e) });
      }
    }
    return failed;
  }

  /**
   * Make the live data a snapshot's. On hard-link and reflink pools (local, without a size limit) in place, in
   * time proportional to what changed (pools/trees/restore.ts): copies of what differs are staged beside the
   * data, a journal of the plan is written to `restore.json`, then carried out. Elsewhere (btrfs, image pools,
   * shared pools, volumes with a size limit, snapshots without a manifest) by a full copy: build `data.new`,
   * mark the swap in `restore.json`, rename data → data.old and data.new → data, delete data.old, drop the mark.
   * `recover` finishes a journaled or marked restore, or discards an unmarked stage or build: a crash leaves
   * before or after.
   */
  async replaceData(rec: VolumeRecord, { pool, root, snaps, data, restoreMarker }: VolumeDirs, snap: SnapshotRecord): Promise<void> {
    if (pool.replaceData) {
      // an image volume: a new image filled with the snapshot replaces the old one (the pool's own swap)
      await pool.replaceData(rec.name, (dir) => pool.snapshotMethod.writableCopy({ snaps, id: snap.id }, dir)).catch(async (err: unknown) => {
        throw await noSpaceError(err, pool.name, pool.root, `restoring ${rec.name} from snapshot ${snap.name}`);
      });
      this.logger.info({ volume: rec.name, snapshot: snap.id, name: snap.name }, 'image volume replaced by snapshot');
      return;
    }
    const what = `restoring ${rec.name} from snapshot ${snap.name}`;
    if (!pool.shared && rec.options.size === undefined) {
      // (shared pools: start-up recovery leaves their volumes to the node at work; size limits: see limitCopy)
      const t0 = performance.now();
      const staged = await stageInPlace(pool.snapshotMethod.name, { snaps, id: snap.id }, data, restoreMarker).catch(async (err: unknown) => {
        throw await noSpaceError(err, pool.name, pool.root, what);
      });
      if ('stats' in staged) {
        const applied = await finishInPlace(data, restoreMarker).catch((err: unknown) => {
          throw new FerryError('internal', `${what} was cut short after its journal was written (${errorMessage(err)}); the data is partly restored, and ferryd finishes the restore when it starts again (restart it before using the volume)`);
        });
        const { timings, ...counts } = applied;
        const stats = { ...staged.stats, timings: { stage: staged.stats.timings, finish: timings } };
        this.logger.info({ volume: rec.name, snapshot: snap.id, name: snap.name, ...stats, ...counts, ms: Math.round(performance.now() - t0) }, 'volume data restored in place from snapshot');
        return;
      }
      this.logger.debug({ volume: rec.name, snapshot: snap.id, reason: staged.fallback }, 'restoring by a full copy');
    }
    const fresh = `${data}.new`;
    const old = `${data}.old`;
    await removeTree(fresh);
    // In a shared pool the mark names this node and this restore, and a local note says so: start-up on this
    // node finishes the swap (other nodes refuse to mount the volume while the mark is there, see checkMountable).
    const pending = pool.shared ? this.pendingFile(pool.name, rec.name) : undefined;
    const id = randomBytes(6).toString('hex');
    const mark: SwapMark = { snapshot: snap.id, phase: 'swap', ...(pool.shared ? { node: this.volumes.node, id } : {}) };
    try {
      await pool.snapshotMethod.writableCopy({ snaps, id: snap.id }, fresh);
      // the copy carries the limit the volume had when the snapshot was taken (or none): the new live data gets today's
      await limitCopy(pool, rec, fresh, snap);
      await syncTree(fresh); // before the marker: a copy made by btrfs for an old non-subvolume snapshot too
      if (pending) await writeJsonAtomic(pending, { pool: pool.name, volume: rec.name, id } satisfies PendingSwap);
      await writeJsonAtomic(restoreMarker, mark);
    } catch (err) {
      // the live data was not touched yet: drop the copy
      await removeTree(fresh).catch(() => undefined);
      if (pending) await unlink(pending).catch(() => undefined);
      throw await noSpaceError(err, pool.name, pool.root, what);
    }
    await pauseAt('swap-marked');
    await this.finishSwap(root, data, fresh, old, restoreMarker, pool.shared === true);
    if (pending) await unlink(pending).catch(() => undefined);
    this.logger.info({ volume: rec.name, snapshot: snap.id, name: snap.name }, 'volume data replaced by snapshot');
  }

  private pendingFile(pool: string, volume: string): string | undefined {
    const dir = this.pendingDir?.();
    return dir ? join(dir, `${pool}.${volume}.json`) : undefined;
  }

  /**
   * After start-up (the cluster beating): finish the swaps this node began in shared pools and a crash cut short,
   * each under the volume's lock and the cluster's change mark, when the mark on the share is still this node's
   * and this restore's (else another node restored the volume again meanwhile: the note is dropped).
   */
  async recoverShared(): Promise<void> {
    const dir = this.pendingDir?.();
    if (!dir) return;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const file = join(dir, name);
      let note: PendingSwap;
      try {
        note = JSON.parse(await readFile(file, 'utf8')) as PendingSwap;
      } catch (err) {
        this.logger.error({ file, err: errorMessage(err) }, 'recovery: a note of an interrupted restore in a shared pool cannot be read; left for the operator');
        continue;
      }
      try {
        await this.finishPending(note);
        await unlink(file);
      } catch (err) {
        this.logger.error({ volume: note.volume, pool: note.pool, err: errorMessage(err) }, 'recovery: could not finish an interrupted restore in a shared pool; the volume is not mounted until it is (restart ferryd, or run the restore again)');
      }
    }
  }

  private async finishPending(note: PendingSwap): Promise<void> {
    const known = this.volumes.list().some((v) => v.name === note.volume);
    if (!known) return; // removed meanwhile (a removal needs the restore finished or redone elsewhere)
    await this.volumes.withLock(note.volume, async () => {
      const rec = this.volumes.recordOf(note.volume);
      const dirs = volumeDirsOf(this.volumes, rec);
      const mark = await readSwapMark(dirs.restoreMarker);
      if (!mark || mark.node !== this.volumes.node || mark.id !== note.id) {
        this.logger.info({ volume: note.volume }, 'recovery: the interrupted restore in a shared pool was finished or redone elsewhere');
        return;
      }
      await this.volumes.changeExclusively(rec, 'finish an interrupted restore', async () => {
        this.logger.warn({ volume: note.volume, pool: note.pool }, 'recovery: finishing an interrupted restore in a shared pool');
        await this.finishSwap(dirs.root, dirs.data, `${dirs.data}.new`, `${dirs.data}.old`, dirs.restoreMarker, true);
      });
    });
  }

  /**
   * The renames of a marked swap, then the old data deleted and the mark dropped. In a shared pool the new data's
   * inode number is noted first (data-id.ts): another node whose cache still leads to the old directory finds out
   * before it mounts or reads it; the note is there before the mark goes, so a node that sees no mark sees it.
   */
  private async finishSwap(root: string, data: string, fresh: string, old: string, marker: string, shared: boolean): Promise<void> {
    const has = async (p: string) => (await readdir(root)).includes(p.slice(root.length + 1));
    if (await has(fresh)) {
      if (await has(data)) await rename(data, old);
      await pauseAt('swap-renamed');
      await rename(fresh, data);
      await fsyncDir(root);
    }
    if (shared) await writeDataId(root, data, this.volumes.node);
    await removeTree(old);
    await unlink(marker);
    await fsyncDir(root);
  }

  /**
   * Start-up, for one volume whose directory holds `top`: finish a journaled restore in place or a marked swap
   * (roll forward), or discard an unjournaled stage or an unmarked build (roll back: the live data was not touched).
   */
  async recover(volume: string, { root, data, restoreMarker }: VolumeDirs, top: string[]): Promise<void> {
    const kind = top.includes(basename(restoreMarker)) ? await readMarkerKind(restoreMarker) : undefined;
    if (kind === 'in-place') {
      this.logger.warn({ volume }, 'recovery: finishing an interrupted restore (replaying its journal)');
      const r = await finishInPlace(data, restoreMarker);
      this.logger.info({ volume, ...r }, 'recovery: restore finished');
      return;
    }
    if (kind === 'swap') {
      this.logger.warn({ volume }, 'recovery: finishing an interrupted restore');
      await this.finishSwap(root, data, `${data}.new`, `${data}.old`, restoreMarker, false);
      return;
    }
    if (top.includes(basename(restoreMarker))) {
      // written atomically, so never torn by a crash: damaged some other way. Keep everything for the operator.
      this.logger.error({ volume, marker: restoreMarker }, 'recovery: the restore marker cannot be read; a restore may be unfinished: the marker and any staged data are left as they are');
      return;
    }
    if (top.includes(`${basename(data)}.new`)) await removeTree(`${data}.new`);
    if (top.includes(basename(stagePath(data)))) {
      this.logger.warn({ volume }, 'recovery: discarding the copies of a restore interrupted before its journal was written');
      await removeTree(stagePath(data));
    }
  }
}

/** A swap mark as written by replaceData, or undefined when there is none (or it is not a swap mark). */
export async function readSwapMark(path: string): Promise<SwapMark | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as SwapMark;
    return v && typeof v === 'object' && v.phase === 'swap' ? v : undefined;
  } catch {
    return undefined;
  }
}

function volumeDirsOf(volumes: SwapVolumes, rec: VolumeRecord): VolumeDirs {
  return volumeDirs(volumes.poolOf(rec), rec.name);
}

/**
 * A restore's new live data gets the volume's size limit before it replaces the old (never a moment without it,
 * never the limit of the day the snapshot was taken); a snapshot that holds more than the limit is refused.
 */
async function limitCopy(pool: VolumeDirs['pool'], rec: VolumeRecord, fresh: string, snap: SnapshotRecord): Promise<void> {
  const size = rec.options.size;
  await pool.sizeLimits.apply(fresh, size);
  if (size === undefined) return;
  const { usedBytes } = await pool.sizeLimits.read(fresh);
  if (usedBytes !== null && usedBytes > size) {
    throw new FerryError('invalid', `snapshot ${snap.name} of volume ${rec.name} holds ${sizeText(usedBytes)}, more than the volume's size ${sizeText(size)}; nothing changed (\`ferry volume resize ${rec.name} SIZE\` first)`);
  }
}
