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
  private queue: Array<{ line: string; resolve: () => void; reject: (err: unknown) => void }> = [];
  private flushing = false;
  private compacting: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    /** Persist the volume records (whose mounts now include every entry logged so far). */
    private readonly compact: () => Promise<void>,
    private readonly rotateAfter = 20_000,
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
    for (const gen of gens) {
      const lines = (await readFile(this.path(gen), 'utf8')).split('\n');
      for (const line of lines) {
        if (!line) continue;
        let e: MountEntry;
        try {
          e = JSON.parse(line) as MountEntry;
        } catch {
          continue; // a torn last line: its write was never acknowledged
        }
        apply(e);
        replayed++;
      }
    }
    this.gen = (gens.at(-1) ?? 0) + 1;
    this.fh = await open(this.path(this.gen), 'a');
    await fsyncDir(this.dir);
    if (gens.length > 0) {
      await this.compact();
      for (const gen of gens) await unlink(this.path(gen));
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
        await this.fh.write(batch.map((b) => b.line).join(''));
        await this.fh.datasync();
        this.entries += batch.length;
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
      if (this.entries >= this.rotateAfter) await this.rotate();
    }
    this.flushing = false;
  }

  /** Start a new generation; compact and delete the old one in the background. */
  private async rotate(): Promise<void> {
    const old = this.gen;
    const oldFh = this.fh;
    this.gen = old + 1;
    this.fh = await open(this.path(this.gen), 'a');
    this.entries = 0;
    await fsyncDir(this.dir);
    this.compacting = this.compacting.then(async () => {
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
