/** Bounded concurrency: run async work with at most N calls in flight, and never return while one still runs. */

/**
 * Run `fn` over `items` with at most `limit` calls in flight. Every call has ended when this settles;
 * it rejects with the first failure. By default every item is still tried after a failure (a recovery
 * pass should not skip the volumes after a broken one); with `stopOnError`, no new item starts once
 * one has failed (a restore need not write the other 60,000 files of a failed run).
 */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>, opts: { stopOnError?: boolean } = {}): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length && !(opts.stopOnError && errors.length > 0)) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw errors[0];
}

/**
 * Jobs started one by one as they come (unlike forEachLimit's known list), at most `limit` at a time.
 * The first failure is re-thrown by the next spawn() and by drain(); drain() returns only when none runs.
 * Waiting is a list of callbacks woken when a job ends, not Promise.race over the running jobs: each race
 * adds a reaction to every running job, and each later end resolves every earlier race again. With 64
 * jobs in flight a backup of 50,000 chunks made millions of those, each reported to Node's promise hook
 * (16 % of the main thread of a first backup).
 */
export class Tasks {
  private running = 0;
  private waiters: Array<() => void> = [];
  private error: unknown;
  private failed = false;
  constructor(private readonly limit: number) {}

  async spawn(fn: () => Promise<void>): Promise<void> {
    while (this.running >= this.limit) await this.anEnd();
    if (this.failed) throw this.error;
    const job = fn(); // (a synchronous throw goes to the caller, and nothing was started)
    this.running++;
    void job
      .catch((err) => {
        if (!this.failed) {
          this.failed = true;
          this.error = err;
        }
      })
      .then(() => {
        this.running--;
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws) w();
      });
  }

  /** Resolves when the next running job ends. */
  private anEnd(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wait until one running job ends (or none is running). */
  async waitOne(): Promise<void> {
    if (this.running) await this.anEnd();
  }

  async drain(): Promise<void> {
    while (this.running) await this.anEnd();
    if (this.failed) throw this.error;
  }
}
