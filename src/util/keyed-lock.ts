/**
 * A lock per key (per volume name): work on one volume is serialised, work on different volumes runs
 * in parallel. Never one global lock: Docker sends Mount/Unmount for many volumes at once.
 */
export class KeyedLock {
  private tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Is work on `key` queued or running? */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  /** Keys with work queued or running (for tests and status). */
  get size(): number {
    return this.tails.size;
  }
}
