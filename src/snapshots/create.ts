/** Making a snapshot: its name, the quiesce (`--exec`, `--pause`), the copy of the tree (through an image's view), and its record written once the tree is whole. */
import { rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { VolumeService } from '../volumes/service.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import type { DockerClient, ContainerRef } from '../docker/client.js';
import { writeJsonAtomic, syncTree } from '../util/atomic.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { removeTree, type SnapshotStats } from '../pools/trees/methods.js';
import type { VolumeDirs } from '../pools/layout.js';
import type { Quarantine } from '../util/quarantine.js';
import { mapNoSpace, noSpaceError } from '../util/no-space.js';
import type { CreateSnapshotOptions, SnapshotRecord } from './record.js';
import { checkManifest } from './damaged.js';
import { makeDirs } from '../util/make-dirs.js';

const SNAP_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,127}$/;

/** Refuse a snapshot name that is not 1-128 characters of [a-zA-Z0-9_.:-] starting with a letter or digit. */
export function checkSnapshotName(name: string | undefined): void {
  if (name !== undefined && !SNAP_NAME.test(name)) {
    throw new FerryError('invalid', `snapshot name ${JSON.stringify(name)}: use 1-128 characters of [a-zA-Z0-9_.:-], starting with a letter or digit`);
  }
}

/** What making a snapshot needs of the snapshot service and the volume service. */
export interface SnapshotCreationContext {
  readonly volumes: Pick<VolumeService, 'node' | 'containersUsing' | 'holdExclusive' | 'get' | 'attachmentsByVolume'>;
  readonly logger: Logger;
  readonly docker?: DockerClient;
  readonly now: () => number;
  /** Where unreadable manifests are moved aside (set on the service after it is made). */
  quarantine(): Quarantine | undefined;
  dirs(rec: VolumeRecord): VolumeDirs;
  listOf(rec: VolumeRecord, all?: boolean): Promise<SnapshotRecord[]>;
  /** Every attempt that got to copying, for /metrics (SnapshotService.onSnapshot). */
  reported(o: { ok: boolean; seconds?: number; volume?: string; at?: string }): void;
}

export class SnapshotCreation {
  constructor(private readonly c: SnapshotCreationContext) {}

  /**
   * Make one snapshot of a volume (callers hold its lock): a new name, `--exec` or `--pause` for consistency, the
   * tree copied (through an image's view, holding a shared image here), then synced and renamed into place, and
   * its record written last: a snapshot is listed only when whole.
   */
  async createLocked(rec: VolumeRecord, opts: CreateSnapshotOptions): Promise<SnapshotRecord> {
    const { pool, snaps, data } = this.c.dirs(rec);
    await mapNoSpace(pool.name, pool.root, `snapshot of ${rec.name}`, () => makeDirs(snaps, 0o700));
    const existing = await this.c.listOf(rec, true);
    const id = randomBytes(6).toString('hex');
    const taken = (n: string) => existing.some((s) => s.name === n || s.id === n);
    let name = opts.name ?? (opts.kind === 'worktree' ? `worktree-${opts.branch}-${id}` : new Date(this.c.now()).toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-'));
    if (taken(name)) {
      if (opts.name !== undefined) throw new FerryError('exists', `volume ${rec.name} already has a snapshot named ${name}`);
      name = `${name}-${id.slice(0, 4)}`; // two automatic names in one second
    }

    const progress = opts.onProgress ?? (() => undefined);
    if (opts.pause || opts.exec) progress({ phase: 'prepare' });
    const users = opts.pause || opts.exec ? await this.runningUsers(rec.name) : [];
    let consistency: SnapshotRecord['consistency'] = 'crash';
    if (opts.exec) {
      for (const c of users) {
        const r = await this.c.docker!.exec(c.id, opts.exec);
        if (r.exitCode !== 0) {
          const out = r.output.trim().slice(-500);
          this.c.reported({ ok: false });
          throw new FerryError('invalid', `--exec ${JSON.stringify(opts.exec)} failed in container ${c.name} with exit code ${r.exitCode}${out ? ` (${out})` : ''}; no snapshot taken`);
        }
      }
      // (no container runs on the volume: nothing ran it, nothing writes; the record claims no more than it is)
      if (users.length) consistency = 'exec';
    }
    const paused: ContainerRef[] = [];
    let pointInTime = false;
    const wasInUse = consistency === 'crash' && (await this.inUse(rec));
    const tmp = join(snaps, `.tmp-${id}`);
    const t0 = performance.now();
    let stats: SnapshotStats;
    try {
      if (opts.pause) {
        for (const c of users) {
          await this.c.docker!.pause(c.id);
          paused.push(c);
        }
        if (users.length) consistency = 'paused';
      }
      let prev = [...existing].reverse().find((s) => s.method === pool.snapshotMethod.name && s.method !== 'btrfs');
      // (without a readable manifest the previous snapshot cannot tell what is unchanged: copy everything)
      if (prev && !(await checkManifest(this.c.quarantine(), snaps, prev.id, rec.name))) prev = undefined;
      // In a shared pool another host may remove a snapshot while this one is made: trees there are complete.
      progress({ phase: 'snapshot' });
      // an image volume's tree is read through a filesystem: a frozen copy of it, or its own (snapshotView)
      // (a frozen copy is crash-consistent as the record says; a tree read file by file from a live filesystem is less)
      // (a shared image is attached by one host at a time: the snapshot is taken where it is, or holds it here)
      stats = await this.c.volumes.holdExclusive(rec, `take a snapshot of volume ${rec.name}`, async () => {
        // (a shared volume restored on another node a moment ago: this node's path to its data must lead to the new data)
        await pool.freshData?.(rec.name, rec.dirIno);
        const view = await pool.snapshotView?.(rec.name);
        pointInTime = view?.pointInTime ?? false;
        try {
          return await pool.snapshotMethod.snapshot(view?.dir ?? data, tmp, {
            id,
            onProgress: progress,
            layout: pool.shared ? 'full' : 'delta',
            manifestOut: join(snaps, `.tmp-${id}.manifest.json`),
            ...(prev ? { prev: { snaps, id: prev.id } } : {}),
          });
        } finally {
          await view?.release();
        }
      });
    } catch (err) {
      await removeTree(tmp).catch(() => undefined);
      await unlink(join(snaps, `.tmp-${id}.manifest.json`)).catch(() => undefined);
      this.c.reported({ ok: false });
      const full = await noSpaceError(err, pool.name, pool.root, `snapshot of ${rec.name}`);
      if (full !== err) throw full;
      if (err instanceof FerryError && err.code === 'in_use') throw err;
      throw new FerryError('internal', `snapshot of ${rec.name} failed: ${errorMessage(err)}`);
    } finally {
      for (const c of paused) await this.c.docker!.unpause(c.id).catch((e) => this.c.logger.error({ container: c.name, err: errorMessage(e) }, 'could not unpause container'));
    }
    // a tree copied file by file from data a container could write meanwhile is not one instant: say so
    if (consistency === 'crash' && !pointInTime && pool.snapshotMethod.name !== 'btrfs' && (wasInUse || (await this.inUse(rec)))) consistency = 'file-by-file';
    const durationMs = Math.round(performance.now() - t0);
    const { timings, ...counts } = stats;
    stats = counts;
    // ferryd's own trees (and their manifests) must be on disk before the record; a btrfs snapshot is already
    const undo = async (err: unknown) => {
      // nothing half-made stays: a tree without its record would be listed by nobody
      for (const t of [tmp, join(snaps, id)]) await removeTree(t).catch(() => undefined);
      for (const m of [`.tmp-${id}.manifest.json`, `${id}.manifest.json`, `${id}.json`]) await unlink(join(snaps, m)).catch(() => undefined);
      this.c.reported({ ok: false });
      return noSpaceError(err, pool.name, pool.root, `snapshot of ${rec.name}`);
    };
    progress({ phase: 'save' });
    try {
      if (stats.files !== undefined) await syncTree(tmp);
      await rename(tmp, join(snaps, id));
      await rename(join(snaps, `.tmp-${id}.manifest.json`), join(snaps, `${id}.manifest.json`)).catch(() => undefined);
    } catch (err) {
      throw await undo(err);
    }
    const snap: SnapshotRecord = {
      id,
      volume: rec.name,
      volumeCreatedAt: rec.createdAt,
      name,
      kind: opts.kind ?? 'snapshot',
      createdAt: new Date(this.c.now()).toISOString(),
      node: this.c.volumes.node,
      method: pool.snapshotMethod.name,
      origin: opts.origin ?? 'manual',
      consistency,
      durationMs,
      stats,
      ...(opts.message !== undefined ? { message: opts.message } : {}),
      ...(opts.parent ? { parent: opts.parent } : {}),
      ...(opts.branch ? { branch: opts.branch } : {}),
      ...(opts.slot ? { slot: opts.slot } : {}),
    };
    try {
      await writeJsonAtomic(join(snaps, `${id}.json`), snap);
    } catch (err) {
      throw await undo(err);
    }
    this.c.logger.info({ volume: rec.name, snapshot: id, name, kind: snap.kind, method: snap.method, ms: durationMs, origin: snap.origin, ...(pointInTime ? { pointInTime } : {}), ...(timings ? { timings } : {}) }, 'snapshot created');
    this.c.reported({ ok: true, seconds: durationMs / 1000, volume: rec.name, at: snap.createdAt });
    return snap;
  }

  /** Is the volume mounted, here or (a shared pool) on a live node, so that a container may write to it? */
  private async inUse(rec: VolumeRecord): Promise<boolean> {
    const v = this.c.volumes.get(rec.name);
    if (v.mounts > 0) return true;
    if (!v.shared) return false;
    // (when the other nodes' attachments cannot be read, nobody can say it is not written: the cautious label)
    const atts = await this.c.volumes.attachmentsByVolume().catch(() => undefined);
    return atts === undefined || (atts.get(rec.name) ?? []).some((a) => a.alive && a.mountIds.length > 0);
  }

  private async runningUsers(volume: string): Promise<ContainerRef[]> {
    if (!this.c.docker) throw new FerryError('unavailable', '--pause and --exec need the Docker API; set dockerHost');
    const all = await this.c.volumes.containersUsing(volume);
    if (all === undefined) throw new FerryError('unavailable', `cannot reach Docker to find the containers using ${volume}; check dockerHost`);
    return all.filter((c) => c.state === 'running');
  }
}
