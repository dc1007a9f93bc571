/** The catalog: one JSON record per volume (and per trash entry), written atomically, all loaded at start. */
import { join } from 'node:path';
import { fsyncDir } from '../util/atomic.js';
import type { VolumeOptions } from '../wire/types.js';
import { MountJournal } from './mount-journal.js';
import type { Quarantine } from '../util/quarantine.js';
import { RecordStore } from './record-store.js';
import { FillMarkers } from './fill-markers.js';

export interface MountRecord {
  /** When Docker mounted it (ISO 8601). */
  since: string;
}

export interface VolumeRecord {
  name: string;
  pool: string;
  createdAt: string;
  /** The node that created it. */
  node: string;
  options: VolumeOptions;
  labels: Record<string, string>;
  /** Reference counts: one entry per Docker mount ID. Persisted so a restart of ferryd loses none. */
  mounts: Record<string, MountRecord>;
  /** What Docker's own store knew of the volume (absent in records of older versions and of CLI-made volumes). */
  docker?: DockerKnown;
  /**
   * A shared directory pool's volume: the inode number (decimal) of its directory, noted at its creation. Another
   * node's cached name may lead to an earlier volume of that name, in the trash (see pools/data-id.ts).
   */
  dirIno?: string;
}

/**
 * Docker keeps a volume's labels and driver options in its own store and drops them on `docker volume rm`;
 * ferryd remembers them so that an undelete can give them back (see docs/design.md, "What Docker knew").
 */
export interface DockerKnown {
  /** The driver options as Docker sent them in Create (strings, unparsed). */
  options?: Record<string, string>;
  /** The driver name Docker knows this plugin by, and the volume's labels: learned from the Engine API. */
  driver?: string;
  labels?: Record<string, string>;
  /** When the labels were last learned (ISO 8601). */
  learnedAt?: string;
}

export interface TrashRecord {
  /** `NAME@MILLIS`, unique per removal. */
  id: string;
  removedAt: string;
  expiresAt: string;
  volume: VolumeRecord;
}

export const TRASH_ID_PATTERN = /^([a-zA-Z0-9][a-zA-Z0-9_.-]+)@(\d{13,})$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function validVolume(key: string, v: unknown): boolean {
  return isObject(v) && v.name === key && typeof v.pool === 'string' && typeof v.createdAt === 'string' && isObject(v.mounts) && isObject(v.options) && isObject(v.labels);
}

function validTrash(key: string, t: unknown): boolean {
  return isObject(t) && t.id === key && typeof t.expiresAt === 'string' && typeof t.removedAt === 'string' && validVolume(String((t.volume as { name?: unknown } | undefined)?.name), t.volume);
}

/** What the catalog could not read and moved aside: the volume service adopts what their data still shows. */
export interface Unreadable {
  /** Volume names whose record was unreadable, with what the mount journal still told of them. */
  volumes: Map<string, { file: string; why: string; createdAt?: string; mounts: Record<string, MountRecord> }>;
  /** Trash ids whose record was unreadable. */
  trash: Map<string, { file: string; why: string }>;
}

/**
 * The node's catalog under DATA_DIR/catalog: volume records, trash records, and the mount journal that
 * carries reference-count changes between compactions.
 */
export class Catalog {
  readonly volumes: RecordStore<VolumeRecord>;
  readonly trash: RecordStore<TrashRecord>;
  /** Creates that fill their volume (restores, clones) under way: what a crash cut short is discarded at start. */
  readonly filling: FillMarkers;
  private readonly journal: MountJournal;
  /** Volumes whose mounts changed since their record was last written. */
  private readonly dirty = new Set<string>();
  private changes = 0;
  /** The version at which each volume's record last changed (loading one is a change). */
  private readonly stamps = new Map<string, number>();

  constructor(
    readonly dir: string,
    private readonly quarantine?: Quarantine,
  ) {
    this.volumes = new RecordStore(join(dir, 'volumes'), validVolume, (name) => this.volumeChanged(name));
    this.trash = new RecordStore(join(dir, 'trash'), validTrash, () => void this.changes++, (t) => t.volume.name);
    this.filling = new FillMarkers(join(dir, 'filling'));
    this.journal = new MountJournal(dir, () => this.compact(), 20_000, quarantine
      ? (file, why) => this.quarantine!.moveAside(file, why, 'Mount counts are taken from the volume records and the readable lines of the journal: a Mount or Unmount in the unreadable lines is not counted (check `ferry volume inspect` against `docker ps`).').then(() => undefined)
      : undefined);
  }

  /**
   * Changes with every change of a volume or trash record in memory (a save, put or forget, a Mount or
   * Unmount, and their undoing): what was made of the catalog at one version is still right at the same.
   * Records are changed only through these calls (a caller that changes a record in place saves it).
   */
  get version(): number {
    return this.changes;
  }

  /**
   * The version at which this volume's record last changed (0: no such volume): what was made of
   * one record at a stamp is still right while its stamp holds, whatever else changed.
   */
  stampOf(name: string): number {
    return this.stamps.get(name) ?? 0;
  }

  private volumeChanged(name: string): void {
    this.changes++;
    // (a removed name's stamp goes with it: made again, its record's first change stamps it anew)
    if (this.volumes.has(name)) this.stamps.set(name, this.changes);
    else this.stamps.delete(name);
  }

  /**
   * Load everything. Records that cannot be parsed are returned (the volume service moves them aside and
   * adopts what their data still shows), with what the mount journal still knows of those volumes.
   */
  async load(): Promise<Unreadable> {
    const out: Unreadable = { volumes: new Map(), trash: new Map() };
    const key = (file: string) => file.slice(file.lastIndexOf('/') + 1, -'.json'.length);
    for (const { file, why } of await this.volumes.load()) out.volumes.set(key(file), { file, why, mounts: {} });
    for (const { file, why } of await this.trash.load()) out.trash.set(key(file), { file, why });
    await this.journal.start((e) => {
      const rec = this.volumes.get(e.v);
      const lost = out.volumes.get(e.v);
      if (!rec && lost) {
        // the record is unreadable: keep the newest incarnation's mounts for the adopted volume
        if (lost.createdAt !== e.c) lost.mounts = {};
        lost.createdAt = e.c;
        if (e.op === '+') lost.mounts[e.id] = { since: e.t ?? e.c };
        else delete lost.mounts[e.id];
        return;
      }
      if (!rec || rec.createdAt !== e.c) return; // an entry of a removed incarnation of that name
      if (e.op === '+') rec.mounts[e.id] = { since: e.t ?? rec.createdAt };
      else delete rec.mounts[e.id];
      this.dirty.add(e.v);
      this.volumeChanged(e.v);
    });
    await fsyncDir(this.dir);
    return out;
  }

  /**
   * Add or drop one Docker mount of a volume: applied in memory at once (callers hold the volume's lock),
   * durable when the returned promise resolves. If the journal cannot be written, the change is undone.
   */
  changeMount(rec: VolumeRecord, id: string, op: '+' | '-', at: string): Promise<void> {
    const before = rec.mounts[id];
    if (op === '+') rec.mounts[id] = { since: at };
    else delete rec.mounts[id];
    this.dirty.add(rec.name);
    this.volumeChanged(rec.name);
    return this.journal.append({ v: rec.name, c: rec.createdAt, id, op, ...(op === '+' ? { t: at } : {}) }).catch((err: unknown) => {
      if (before) rec.mounts[id] = before;
      else delete rec.mounts[id];
      this.volumeChanged(rec.name);
      throw err;
    });
  }

  private async compact(): Promise<void> {
    const names = [...this.dirty];
    this.dirty.clear();
    for (const name of names) {
      const rec = this.volumes.get(name);
      if (rec) await this.volumes.save(name, rec);
    }
  }

  async close(): Promise<void> {
    await this.journal.close();
  }
}
