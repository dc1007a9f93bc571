/**
 * A pool of encoder worker threads. encode() queues a chunk into a batch (so that thousands of small
 * files do not cost a message each); a batch goes to the least busy worker when it holds 1 MiB or 64
 * chunks, or at the next turn of the event loop.
 */
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import type { MasterKey } from './crypto.js';
import type { EncodeJob } from './encode-worker.js';

interface Pending {
  resolve: (b: Buffer) => void;
  reject: (e: unknown) => void;
}

export class EncoderPool {
  private readonly workers: Array<{ w: Worker; busy: number }> = [];
  private batch: EncodeJob['blobs'] = [];
  private batchWaiters: Pending[] = [];
  private batchBytes = 0;
  private batchTransfer: ArrayBuffer[] = [];
  private scheduled = false;
  private seq = 0;
  private readonly inflight = new Map<number, Pending[]>();
  private failed: unknown;

  constructor(key: MasterKey | null, size = Math.max(1, Math.min(4, cpus().length))) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL('./encode-worker.js', import.meta.url), { workerData: key ? { enc: key.enc, mac: key.mac } : null });
      const slot = { w, busy: 0 };
      w.on('message', (m: { seq: number; out?: Uint8Array[]; error?: string }) => {
        slot.busy--;
        const waiters = this.inflight.get(m.seq)!;
        this.inflight.delete(m.seq);
        if (m.error || !m.out) waiters.forEach((p) => p.reject(new Error(`encoder: ${m.error}`)));
        else waiters.forEach((p, i) => p.resolve(Buffer.from(m.out![i]!.buffer, m.out![i]!.byteOffset, m.out![i]!.length)));
      });
      w.on('error', (err) => this.fail(err));
      this.workers.push(slot);
    }
  }

  private fail(err: unknown): void {
    this.failed ??= err;
    for (const ws of this.inflight.values()) ws.forEach((p) => p.reject(err));
    this.inflight.clear();
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
    const seq = this.seq++;
    const job: EncodeJob = { seq, blobs: this.batch };
    this.inflight.set(seq, this.batchWaiters);
    this.batch = [];
    this.batchWaiters = [];
    this.batchBytes = 0;
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    // Chunks whose memory the caller handed over are moved to the worker instead of copied.
    const transfer = this.batchTransfer;
    this.batchTransfer = [];
    slot.w.postMessage(job, transfer);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((s) => s.w.terminate()));
  }
}
