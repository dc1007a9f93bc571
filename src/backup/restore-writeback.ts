/**
 * Writeback while a restore runs: after every WRITEBACK_STEP bytes the writers wrote, the filesystem
 * being restored into is synced (syncfs, one at a time) while the writers go on. A restore is CPU work
 * (decrypting, decompressing, creating files) and the sync that makes its result durable is disk work;
 * without this the kernel would write nothing back until the end (a few GiB of dirty pages are below its
 * own thresholds), and the caller's final sync would wait for all of it.
 * A sync that fails fails the restore (check()): the kernel reports a writeback error (EIO) to a syncfs
 * once, and drops the pages it could not write, so the caller's final sync would succeed over lost data.
 */
import { syncTree } from '../util/atomic.js';
import { FerryError, errorMessage } from '../util/errors.js';

/** Bytes between syncs: small enough that the final sync has little left, large enough that syncs (each a journal commit and a cache flush) stay few. */
export const WRITEBACK_STEP = 128 * 1024 * 1024;

export class Writeback {
  private pending = 0;
  private running: Promise<void> | undefined;
  private stopped = false;
  private failure: unknown;

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
    if (this.step <= 0 || this.pending < this.step || this.running || this.stopped || this.failure) return;
    this.pending = 0;
    this.running = syncTree(this.dir).then(
      () => {
        this.running = undefined;
        this.next();
      },
      (err: unknown) => {
        this.running = undefined;
        this.failure ??= err;
      },
    );
  }

  /** Start no more syncs; wait for the one under way (its child process must not outlive the restore, and the caller's sync would wait for it anyway). Never throws. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /** Throw when a sync failed: what was written may not be on the disk, and no later sync would say so. */
  check(): void {
    if (this.failure === undefined) return;
    const why = errorMessage(this.failure);
    if (/no space left/i.test(why)) throw new FerryError('no_space', `restore: the disk of ${this.dir} filled up while the restored files were written to it (${why}); free space and restore again`);
    throw new FerryError('internal', `restore: the restored files could not be written to the disk of ${this.dir} (${why}); check the disk (dmesg) and restore again`);
  }
}
