/** The catalog: one JSON record per volume (and per trash entry), written atomically, all loaded at start. */
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeJsonAtomic, fsyncDir, keepDirOpen, stageFileAtomic, type StagedFile } from '../util/atomic.js';
import { readFileSync } from 'node:fs';
import { errorMessage, isErrno } from '../util/errors.js';
import type { VolumeOptions } from '../wire/types.js';
import { MountJournal } from './mount-journal.js';
import type { Quarantine } from '../util/quarantine.js';
import { noSpaceError } from '../util/no-space.js';

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

/**
 * Writes of one record are coalesced: while one write of NAME is in flight, every change made meanwhile
 * is carried by the next single write (group commit). A caller's promise resolves only when a write that
 * contains its change is on disk.
 */
class RecordFile<T> {
  private inflight: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly current: () => T | undefined,
  ) {}

  sync(): Promise<void> {
    if (this.next) return this.next;
    if (!this.inflight) return (this.inflight = this.write());
    const after = this.inflight.catch(() => undefined);
    this.next = after.then(() => {
      this.next = undefined;
      return (this.inflight = this.write());
    });
    return this.next;
  }

  /** Is a write of this record in flight or queued? */
  get busy(): boolean {
    return this.inflight !== undefined || this.next !== undefined;
  }

  /**
   * Put in place a file staged with the current value (see RecordStore.saveAfter); when another write
   * has started meanwhile, the staged file is dropped and the value goes through the ordinary path.
   */
  commitStaged(staged: StagedFile): Promise<void> {
    if (this.busy) {
      void staged.discard();
      return this.sync();
    }
    return (this.inflight = staged.commit().finally(() => {
      this.inflight = undefined;
    }));
  }

  private async write(): Promise<void> {
    try {
      const value = this.current();
      if (value === undefined) {
        try {
          await unlink(this.path);
        } catch (err) {
          if (!isErrno(err, 'ENOENT')) throw err;
        }
      } else {
        await writeJsonAtomic(this.path, value);
      }
    } finally {
      this.inflight = undefined;
    }
  }
}

/** A map kept in memory (Get/List are answered from it) and mirrored to one JSON file per entry. */
class RecordStore<T> {
  private readonly items = new Map<string, T>();
  private readonly files = new Map<string, RecordFile<T>>();
  private keyChanges = 0;
  /** How many entries have each value of `indexBy` (kept with the map, so that asking costs no scan). */
  private readonly counts = new Map<string, number>();

  constructor(
    readonly dir: string,
    /** Is a parsed file's content a record of key? (a file that parses to `null` or `42` is as bad as garbage) */
    private readonly valid: (key: string, value: unknown) => boolean = () => true,
    /** Told of every change of the map, with its key (listings cached by the catalog's version are made again). */
    private readonly changed: (key: string) => void = () => undefined,
    /** What entries are counted by (countOf), if anything: the trash counts its entries by volume name. */
    private readonly indexBy?: (value: T) => string,
  ) {}

  /** Changes whenever a key is added or removed (not when an entry changes): what was made of the keys alone still holds while it does not. */
  get keysVersion(): number {
    return this.keyChanges;
  }

  /** (every change of `items` goes through these two, so that keysVersion counts the set of keys) */
  private setItem(key: string, value: T): void {
    const old = this.items.get(key);
    if (old === undefined) this.keyChanges++;
    else this.count(old, -1);
    this.items.set(key, value);
    this.count(value, 1);
  }

  private deleteItem(key: string): void {
    const old = this.items.get(key);
    if (old === undefined) return;
    this.items.delete(key);
    this.keyChanges++;
    this.count(old, -1);
  }

  private count(value: T, by: 1 | -1): void {
    if (!this.indexBy) return;
    const k = this.indexBy(value);
    const n = (this.counts.get(k) ?? 0) + by;
    if (n > 0) this.counts.set(k, n);
    else this.counts.delete(k);
  }

  /** How many entries have this value of `indexBy`. */
  countOf(indexKey: string): number {
    return this.counts.get(indexKey) ?? 0;
  }

  /** Load every file; returns those that could not be read as a record, with why. */
  async load(): Promise<Array<{ file: string; why: string }>> {
    await mkdir(this.dir, { recursive: true });
    keepDirOpen(this.dir); // (flushed at every create and remove)
    const bad: Array<{ file: string; why: string }> = [];
    const entries = await readdir(this.dir);
    // Temporary files of writes that a crash interrupted: the record they were replacing is intact.
    for (const tmp of entries.filter((e) => e.startsWith('.') && e.includes('.json.tmp-'))) await unlink(join(this.dir, tmp)).catch(() => undefined);
    const files = entries.filter((e) => e.endsWith('.json') && !e.startsWith('.'));
    // Start-up time with thousands of volumes is one of Docker's waits, and nothing else runs yet: read the
    // records synchronously, one after the other (10,000 records: 70 ms, against 360 ms through the
    // thread pool 64 at a time, where every small file costs four round trips: open, fstat, read, close).
    for (const entry of files) {
      try {
        const key = entry.slice(0, -'.json'.length);
        let text: string;
        try {
          // (a name readdir gave, below a directory made by join: join's result, without its normalising, 10,000 times)
          text = readFileSync(`${this.dir}/${entry}`, 'utf8');

        } catch (err) {
          if (isErrno(err, 'ENOENT')) continue; // gone meanwhile
          throw err;
        }
        const value = JSON.parse(text) as T;
        if (!this.valid(key, value)) throw new Error('not a record');
        this.setItem(key, value);
        this.onDisk.add(key);
        this.changed(key);
      } catch (err) {
        bad.push({ file: join(this.dir, entry), why: errorMessage(err) });
      }
    }
    return bad;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  values(): T[] {
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  get size(): number {
    return this.items.size;
  }

  /** Entries known to be in a file (loaded or saved); `put` entries are in memory only. */
  private readonly onDisk = new Set<string>();

  isOnDisk(key: string): boolean {
    return this.onDisk.has(key);
  }

  /** Cache an entry in memory only (a record whose truth lives elsewhere, e.g. in a shared pool). */
  put(key: string, value: T): void {
    this.setItem(key, value);
    this.changed(key);
  }

  /** Forget an entry; deletes its file if it has one. */
  async forget(key: string): Promise<void> {
    if (this.onDisk.has(key)) return this.save(key, undefined);
    this.deleteItem(key);
    this.changed(key);
  }

  /**
   * Set (or with undefined, delete) an entry and resolve when that state is durable. When the write fails
   * (a full disk) the entry is as it was, in memory too, unless a later change replaced it meanwhile.
   */
  async save(key: string, value: T | undefined): Promise<void> {
    const before = this.items.get(key);
    const wasOnDisk = this.onDisk.has(key);
    try {
      await this.write(key, value);
    } catch (err) {
      if (this.items.get(key) === value) {
        if (before === undefined) this.deleteItem(key);
        else this.setItem(key, before);
        if (wasOnDisk) this.onDisk.add(key);
        else this.onDisk.delete(key);
        this.changed(key);
      }
      throw await noSpaceError(err, `the data dir ${dirname(dirname(this.dir))}`, this.dir, `writing the catalog record ${key}`);
    }
  }

  /**
   * Save a new entry once `ready` (work that must be durable before the record appears: the volume's
   * directory) has resolved, writing and fsyncing the record's file meanwhile: the two disk flushes
   * overlap, and the record is renamed into place only after both. The entry shows in memory from then
   * on, as with `save`. If `ready` fails, nothing is saved and its error is thrown.
   */
  async saveAfter(key: string, value: T, ready: Promise<void>): Promise<void> {
    if (this.items.has(key) || this.files.get(key)?.busy) {
      await ready;
      return this.save(key, value);
    }
    const [made, done] = await Promise.allSettled([stageFileAtomic(join(this.dir, `${key}.json`), JSON.stringify(value, null, 2) + '\n'), ready]);
    if (done.status === 'rejected') {
      if (made.status === 'fulfilled') await made.value.discard();
      throw done.reason;
    }
    if (made.status === 'rejected') throw await noSpaceError(made.reason, `the data dir ${dirname(dirname(this.dir))}`, this.dir, `writing the catalog record ${key}`);
    if (this.items.has(key) || this.files.get(key)?.busy) {
      // (changed meanwhile by someone not holding the name's lock: the ordinary, coalescing path)
      await made.value.discard();
      return this.save(key, value);
    }
    this.setItem(key, value);
    this.onDisk.add(key);
    this.changed(key);
    try {
      await this.fileOf(key).commitStaged(made.value);
    } catch (err) {
      if (this.items.get(key) === value) {
        this.deleteItem(key);
        this.onDisk.delete(key);
        this.changed(key);
      }
      throw await noSpaceError(err, `the data dir ${dirname(dirname(this.dir))}`, this.dir, `writing the catalog record ${key}`);
    }
  }

  private fileOf(key: string): RecordFile<T> {
    let file = this.files.get(key);
    if (!file) {
      file = new RecordFile(join(this.dir, `${key}.json`), () => this.items.get(key));
      this.files.set(key, file);
    }
    return file;
  }

  private write(key: string, value: T | undefined): Promise<void> {
    if (value === undefined) {
      this.deleteItem(key);
      this.onDisk.delete(key);
    } else {
      this.setItem(key, value);
      this.onDisk.add(key);
    }
    this.changed(key);
    return this.fileOf(key).sync();
  }
}

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
