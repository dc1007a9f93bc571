/** A map kept in memory and mirrored to one JSON file per entry, written atomically with coalesced writes (the catalog's volumes and trash). */
import { readdir, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeJsonAtomic, keepDirOpen, stageFileAtomic, type StagedFile } from '../util/atomic.js';
import { errorMessage, isErrno } from '../util/errors.js';
import { noSpaceError } from '../util/no-space.js';
import { makeDirs } from '../util/make-dirs.js';

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
export class RecordStore<T> {
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
    await makeDirs(this.dir);
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
