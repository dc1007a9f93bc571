// One request/answer protocol between a thread and a worker: ids, coded errors, progress, and a dead worker failing what waits on it.
import { parentPort, type TransferListItem, type Worker } from 'node:worker_threads';
import { FerryError, errorMessage, type ErrorCode } from './errors.js';

/** A request as it crosses the thread boundary. */
interface Request<Req> {
  id: number;
  req: Req;
}

/** What a worker sends back: progress of a request (any number), then one answer. */
type Reply =
  | { id: number; progress: unknown }
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { message: string; code?: ErrorCode; details?: Record<string, unknown> } };

export interface RequestOptions<P> {
  /** Moved to the worker instead of copied (the caller's views of them become empty). */
  transfer?: readonly TransferListItem[];
  /** Told each progress message the worker sends for this request. */
  onProgress?: (p: P) => void;
}

interface Waiting {
  resolve: (r: never) => void;
  reject: (e: unknown) => void;
  onProgress?: (p: never) => void;
}

/**
 * The main thread's end: request() posts a message with an id and resolves with the worker's result, or
 * rejects with its error (a FerryError keeps its code and details). When the worker dies (an 'error', or
 * an 'exit' before it answered) every request still waiting rejects, and so does every later one.
 */
export class WorkerChannel<Req, Res, P = never> {
  private seq = 0;
  private readonly waiting = new Map<number, Waiting>();
  private death: Error | undefined;
  private closing = false;

  /**
   * `name` is for errors ("the <name> worker exited with code N"). With `unrefWhenIdle`, the worker keeps
   * the process alive only while a request waits on it.
   */
  constructor(
    readonly worker: Worker,
    readonly name: string,
    private readonly opts: { unrefWhenIdle?: boolean } = {},
  ) {
    worker.on('message', (m: Reply) => this.receive(m));
    worker.on('error', (err) => this.die(err));
    worker.on('exit', (code) => this.die(new Error(`the ${name} worker exited with code ${code}`)));
    if (opts.unrefWhenIdle) worker.unref();
  }

  /** Requests sent and not yet answered. */
  get pending(): number {
    return this.waiting.size;
  }

  /** Why the worker is gone (its error, or its exit), once it is. */
  get dead(): Error | undefined {
    return this.death;
  }

  request(req: Req, opts: RequestOptions<P> = {}): Promise<Res> {
    if (this.death) return Promise.reject(this.death);
    const id = ++this.seq;
    return new Promise<Res>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: never) => void, reject, onProgress: opts.onProgress as ((p: never) => void) | undefined });
      if (this.opts.unrefWhenIdle && this.waiting.size === 1) this.worker.ref();
      this.worker.postMessage({ id, req } satisfies Request<Req>, opts.transfer);
    });
  }

  /** Stop the worker; requests still waiting reject. */
  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private receive(m: Reply): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    if ('progress' in m) return w.onProgress?.(m.progress as never);
    this.settled(m.id);
    if (m.ok) w.resolve(m.result as never);
    else w.reject(m.error.code ? new FerryError(m.error.code, m.error.message, m.error.details) : new Error(m.error.message));
  }

  private settled(id: number): void {
    this.waiting.delete(id);
    if (this.opts.unrefWhenIdle && this.waiting.size === 0) this.worker.unref();
  }

  private die(err: Error): void {
    this.death ??= this.closing ? new Error(`the ${this.name} worker was closed`) : err;
    for (const [id, w] of this.waiting) {
      this.settled(id);
      w.reject(this.death);
    }
  }
}

export interface RequestContext<P> {
  /** The request's id, as the main thread numbered it. */
  id: number;
  /** Send the caller progress of this request. */
  progress(p: P): void;
  /** ArrayBuffers of the result to move to the caller instead of copying them. */
  transfer: TransferListItem[];
}

/** The worker's end: answer each request from the parent thread with handler's result or error. */
export function serveRequests<Req, Res, P = never>(handler: (req: Req, ctx: RequestContext<P>) => Res | Promise<Res>): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests() runs in a worker thread');
  port.on('message', ({ id, req }: Request<Req>) => {
    const ctx: RequestContext<P> = { id, progress: (p) => port.postMessage({ id, progress: p } satisfies Reply), transfer: [] };
    void (async () => handler(req, ctx))().then(
      (result) => port.postMessage({ id, ok: true, result } satisfies Reply, ctx.transfer),
      (err: unknown) => {
        const error = err instanceof FerryError ? { message: err.message, code: err.code, details: err.details } : { message: errorMessage(err) };
        port.postMessage({ id, ok: false, error } satisfies Reply);
      },
    );
  });
}
