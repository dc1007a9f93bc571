/** The mount journal: reference-count changes appended and fsynced before Docker is answered, folded into the records. */
import { open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../util/atomic.js';

/** One reference-count change: volume `v` (incarnation `c`, its creation time) gained (+) or lost (-) mount `id`. */
export interface MountEntry {
  v: string;
  c: string;
  id: string;
  op: '+' | '-';
  /** When (ISO 8601), for `+`. */
  t?: string;
}

const FILE = /^mounts\.(\d+)\.log$/;
/** The start of an entry as `append` writes it. */
const TORN = /^\{"v":"[^\n]{0,600}$/;

function parseEntry(line: string): MountEntry | undefined {
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    return undefined;
  }
  const m = e as Partial<MountEntry> | null;
  if (typeof m !== 'object' || m === null || typeof m.v !== 'string' || typeof m.c !== 'string' || typeof m.id !== 'string' || (m.op !== '+' && m.op !== '-')) return undefined;
  return m as MountEntry;
}

/**
 * The write-ahead log of Mount/Unmount: one JSON line per change, appended and fdatasync'ed in batches
 * (group commit across all volumes), so that 64 concurrent clients share one disk flush instead of paying
 * two fsyncs each. A change is acknowledged to Docker only after the flush that carries it.
 *
 * Volume records hold the counts as of the last compaction; replaying the log on top gives the current
 * state (the last entry per mount ID wins, so replaying twice is harmless). When a log grows past
 * `rotateAfter` entries, appends move to a new generation and `compact` persists the records, after which
 * the old generation is deleted.
 */
export class MountJournal {
  private fh: FileHandle | undefined;
  private gen = 0;
  private entries = 0;
  /** Bytes of the current generation known to be whole entries: a failed write is cut back to this. */
  private size = 0;
  private queue: Array<{ line: string; resolve: () => void; reject: (err: unknown) => void }> = [];
  private flushing = false;
  private compacting: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    /** Persist the volume records (whose mounts now include every entry logged so far). */
    private readonly compact: () => Promise<void>,
    private readonly rotateAfter = 20_000,
    /** A generation with unreadable lines is handed here (moved aside) instead of being deleted after replay. */
    private readonly aside?: (file: string, why: string) => Promise<void>,
  ) {}

  private async generations(): Promise<number[]> {
    return (await readdir(this.dir))
      .map((f) => FILE.exec(f)?.[1])
      .filter((g): g is string => g !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private path(gen: number): string {
    return join(this.dir, `mounts.${gen}.log`);
  }

  /**
   * Replay every generation in order, open a new one for appends, let the caller persist what it
   * rebuilt (`compact`), then delete the replayed files.
   */
  async start(apply: (e: MountEntry) => void): Promise<number> {
    const gens = await this.generations();
    let replayed = 0;
    const bad = new Map<number, string>();
    for (const gen of gens) {
      const lines = (await readFile(this.path(gen), 'utf8')).split('\n');
      let unreadable = 0;
      lines.forEach((line, i) => {
        if (!line) return;
        const e = parseEntry(line);
        if (e) {
          apply(e);
          replayed++;
        } else if (!(i === lines.length - 1 && TORN.test(line))) unreadable++;
        // (a torn last line, the beginning of an entry without its newline: a write that a crash cut
        // short, never acknowledged to Docker)
      });
      if (unreadable) bad.set(gen, `${unreadable} of ${lines.filter(Boolean).length} lines are not journal entries`);
    }
    this.gen = (gens.at(-1) ?? 0) + 1;
    this.fh = await open(this.path(this.gen), 'a');
    this.size = 0;
    await fsyncDir(this.dir);
    if (gens.length > 0) {
      await this.compact();
      for (const gen of gens) {
        const why = bad.get(gen);
        if (why && this.aside) await this.aside(this.path(gen), why);
        else await unlink(this.path(gen));
      }
      await fsyncDir(this.dir);
    }
    return replayed;
  }

  /** Log one change; resolves when it is on disk. */
  append(e: MountEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ line: JSON.stringify(e) + '\n', resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      try {
        if (!this.fh) throw new Error('the mount journal is closed');
        const text = batch.map((b) => b.line).join('');
        try {
          await this.fh.write(text);
          await this.fh.datasync();
        } catch (err) {
          // (a full disk can take part of the batch: no torn line may stay in front of the next entries)
          await this.fh.truncate(this.size).catch(() => undefined);
          throw err;
        }
        this.size += Buffer.byteLength(text);
        this.entries += batch.length;
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
      // (a rotation that fails, on a full disk, is tried again after the next batch)
      if (this.entries >= this.rotateAfter) await this.rotate().catch(() => undefined);
    }
    this.flushing = false;
  }

  /** Start a new generation; compact and delete the old one in the background. */
  private async rotate(): Promise<void> {
    const old = this.gen;
    const oldFh = this.fh;
    const fh = await open(this.path(old + 1), 'a');
    this.gen = old + 1;
    this.fh = fh;
    this.entries = 0;
    this.size = 0;
    await fsyncDir(this.dir);
    // (a compaction that failed leaves its generation on disk, replayed at the next start: the next one still runs)
    this.compacting = this.compacting.catch(() => undefined).then(async () => {
      await oldFh?.close();
      await this.compact();
      await unlink(this.path(old));
      await fsyncDir(this.dir);
    });
  }

  async close(): Promise<void> {
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    await this.compacting.catch(() => undefined);
    await this.fh?.close();
    this.fh = undefined;
  }
}
