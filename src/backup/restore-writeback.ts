/**
 * Writeback while a restore runs: after every WRITEBACK_STEP bytes the writers wrote, the filesystem
 * being restored into is synced (syncfs, one at a time) while the writers go on. A restore is CPU work
 * (decrypting, decompressing, creating files) and the sync that makes its result durable is disk work;
 * without this the kernel would write nothing back until the end (a few GiB of dirty pages are below its
 * own thresholds), and the caller's final sync would wait for all of it. Only an optimisation: a sync that
 * fails is left to that final sync.
 */
import { syncTree } from '../util/atomic.js';

/** Bytes between syncs: small enough that the final sync has little left, large enough that syncs (each a journal commit and a cache flush) stay few. */
export const WRITEBACK_STEP = 128 * 1024 * 1024;

export class Writeback {
  private pending = 0;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly step = WRITEBACK_STEP,
  ) {}

  /** `n` more bytes were written (they are in the page cache). */
  wrote(n: number): void {
    this.pending += n;
    this.next();
  }

  /** A sync when STEP bytes were written since the last one started and none runs (when one ends, the bytes written meanwhile may start the next). */
  private next(): void {
    if (this.step <= 0 || this.pending < this.step || this.running || this.stopped) return;
    this.pending = 0;
    const done = () => {
      this.running = undefined;
      this.next();
    };
    this.running = syncTree(this.dir).then(done, done);
  }

  /** Start no more syncs; wait for the one under way (its child process must not outlive the restore, and the caller's sync would wait for it anyway). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}
