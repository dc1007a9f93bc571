/**
 * A pool of encoder worker threads. encode() queues a chunk into a batch (so that thousands of small
 * files do not cost a message each); a batch goes to the least busy worker when it holds 1 MiB or 64
 * chunks, or at the next turn of the event loop.
 */
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import type { MasterKey } from './crypto.js';
import type { EncodeBatch } from './encode-worker.js';
import { WorkerChannel } from '../util/worker-channel.js';

interface Pending {
  resolve: (b: Buffer) => void;
  reject: (e: unknown) => void;
}

export class EncoderPool {
  /** One channel per worker (exposed so that tests can end a worker and see its callers fail). */
  readonly channels: Array<WorkerChannel<EncodeBatch, Uint8Array[]>> = [];
  private batch: EncodeBatch = [];
  private batchWaiters: Pending[] = [];
  private batchBytes = 0;
  private batchTransfer: ArrayBuffer[] = [];
  private scheduled = false;
  private failed: unknown;

  constructor(key: MasterKey | null, size = Math.max(1, Math.min(4, cpus().length))) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL('./encode-worker.js', import.meta.url), { workerData: key ? { enc: key.enc, mac: key.mac } : null });
      this.channels.push(new WorkerChannel(w, 'encoder'));
    }
  }

  /**
   * Encode a chunk. With `owned`, the chunk's whole ArrayBuffer belongs to this call and is moved to the
   * worker (the caller's view becomes empty); otherwise the chunk is copied.
   */
  encode(data: Uint8Array, aad?: Uint8Array, owned = false): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<Buffer>((resolve, reject) => {
      if (owned && data.buffer instanceof ArrayBuffer) this.batchTransfer.push(data.buffer);
      this.batch.push({ data, aad });
      this.batchWaiters.push({ resolve, reject });
      this.batchBytes += data.length;
      if (this.batchBytes >= 1024 * 1024 || this.batch.length >= 64) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.batch.length === 0) return;
    const waiters = this.batchWaiters;
    const chan = this.channels.reduce((a, b) => (b.pending < a.pending ? b : a));
    // Chunks whose memory the caller handed over are moved to the worker instead of copied.
    const done = chan.request(this.batch, { transfer: this.batchTransfer });
    this.batch = [];
    this.batchWaiters = [];
    this.batchBytes = 0;
    this.batchTransfer = [];
    done.then(
      (out) => waiters.forEach((p, i) => p.resolve(Buffer.from(out[i]!.buffer, out[i]!.byteOffset, out[i]!.length))),
      (err: unknown) => {
        // a worker that died fails the pool: what is queued after it would be lost too
        if (chan.dead) this.failed ??= err;
        waiters.forEach((p) => p.reject(chan.dead ? err : new Error(`encoder: ${err instanceof Error ? err.message : String(err)}`)));
      },
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.channels.map((c) => c.close()));
  }
}
