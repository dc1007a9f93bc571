// Runs one pass every N ms, never two at once, and waits at stop for the pass under way.
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  /** `onError` hears a pass of the timer's that failed (a pass run by `run` rejects to its caller as well). */
  constructor(
    private readonly intervalMs: number,
    private readonly pass: () => Promise<void>,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  /** Every `intervalMs` from now (and at once with `now`); the timer does not keep the process alive. */
  start(now = false): void {
    const tick = () => void this.run().catch(this.onError);
    if (now) tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  /** One pass now; a call while one is under way shares it. */
  run(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }
}
