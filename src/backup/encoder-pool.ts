/**
 * A pool of backup worker threads (encode-worker.ts). Jobs are queued into a batch per worker (so that
 * thousands of small files do not cost a message each); a batch goes when it holds 1 MiB or 64 jobs, or
 * at the next turn of the event loop. A read goes to the least busy worker, and the chunks it holds are
 * encoded or dropped by that same worker.
 */
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import type { MasterKey } from './crypto.js';
import type { EncodeBatch, EncodeResult, EncoderSetup, ReadAnswer } from './encode-worker.js';
import type { Chunker } from './chunker.js';
import { WorkerChannel } from '../util/worker-channel.js';
import { builtUrl } from '../util/built-files.js';

interface Pending {
  resolve: (b: never) => void;
  reject: (e: unknown) => void;
}

interface Lane {
  chan: WorkerChannel<EncodeBatch, EncodeResult>;
  batch: EncodeBatch;
  waiters: Pending[];
  bytes: number;
  transfer: ArrayBuffer[];
  scheduled: boolean;
}

/** A chunk a worker holds after a read: encoded or dropped through the pool. */
export interface HeldRef {
  lane: number;
  token: number;
}

export class EncoderPool {
  private readonly lanes: Lane[] = [];
  private failed: unknown;

  /** `chunker`: the repository's data chunker and its gear seed, for read(). */
  constructor(key: MasterKey | null, size = Math.max(1, Math.min(4, cpus().length)), chunker?: { chunker: Chunker; seed: Uint8Array }) {
    const setup: EncoderSetup = { key: key ? { enc: key.enc, mac: key.mac } : null, chunker: chunker && { params: chunker.chunker.params, seed: chunker.seed } };
    for (let i = 0; i < size; i++) {
      const w = new Worker(builtUrl('backup/encode-worker.js'), { workerData: setup });
      this.lanes.push({ chan: new WorkerChannel(w, 'encoder'), batch: [], waiters: [], bytes: 0, transfer: [], scheduled: false });
    }
  }

  /** One channel per worker (exposed so that tests can end a worker and see its callers fail). */
  get channels(): Array<WorkerChannel<EncodeBatch, EncodeResult>> {
    return this.lanes.map((l) => l.chan);
  }

  private least(): number {
    let best = 0;
    for (let i = 1; i < this.lanes.length; i++) if (this.lanes[i]!.chan.pending + this.lanes[i]!.batch.length / 64 < this.lanes[best]!.chan.pending + this.lanes[best]!.batch.length / 64) best = i;
    return best;
  }

  /**
   * Encode a chunk. With `owned`, the chunk's whole ArrayBuffer belongs to this call and is moved to the
   * worker (the caller's view becomes empty); otherwise the chunk is copied.
   */
  encode(data: Uint8Array, aad?: Uint8Array, owned = false): Promise<Buffer> {
    const lane = this.least();
    return this.queue<Buffer>(lane, { data, aad }, data.length, owned && data.buffer instanceof ArrayBuffer ? data.buffer : undefined);
  }

  /**
   * Read a file from `offset` (0 or a previous answer's `next`) and cut it into chunks, in a worker
   * (needs the pool made with a chunker); each chunk must then go to encodeHeld() or dropHeld(), except
   * with `encode`, when the answer carries each chunk's stored form and the worker keeps nothing. Rejects
   * with the errno error of a failed open or read, except ENOENT, which answers `vanished`.
   */
  async read(path: string, offset: number, encode = false): Promise<{ answer: ReadAnswer; lane: number }> {
    const lane = this.least();
    return { answer: await this.queue<ReadAnswer>(lane, encode ? { read: path, offset, encode } : { read: path, offset }, 64 * 1024), lane };
  }

  /** Encode a chunk a read left in a worker. */
  encodeHeld(ref: HeldRef, size: number, aad?: Uint8Array): Promise<Buffer> {
    return this.queue<Buffer>(ref.lane, { token: ref.token, aad }, size);
  }

  /** Forget a chunk a read left in a worker (the repository has it). */
  dropHeld(ref: HeldRef): void {
    this.queue<Buffer>(ref.lane, { token: ref.token, drop: true }, 0).catch(() => undefined);
  }

  private queue<T>(i: number, job: EncodeBatch[number], bytes: number, transfer?: ArrayBuffer): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    const lane = this.lanes[i]!;
    return new Promise<T>((resolve, reject) => {
      lane.batch.push(job);
      lane.waiters.push({ resolve: resolve as (b: never) => void, reject });
      if (transfer) lane.transfer.push(transfer);
      lane.bytes += bytes;
      if (lane.bytes >= 1024 * 1024 || lane.batch.length >= 64) this.flush(lane);
      else if (!lane.scheduled) {
        lane.scheduled = true;
        setImmediate(() => this.flush(lane));
      }
    });
  }

  private flush(lane: Lane): void {
    lane.scheduled = false;
    if (lane.batch.length === 0) return;
    const waiters = lane.waiters;
    const chan = lane.chan;
    // Chunks whose memory the caller handed over are moved to the worker instead of copied.
    const done = chan.request(lane.batch, { transfer: lane.transfer });
    lane.batch = [];
    lane.waiters = [];
    lane.bytes = 0;
    lane.transfer = [];
    done.then(
      (out) =>
        waiters.forEach((p, i) => {
          const o = out[i]!;
          p.resolve((o instanceof Uint8Array ? Buffer.from(o.buffer, o.byteOffset, o.length) : o) as never);
        }),
      (err: unknown) => {
        // a worker that died fails the pool: what is queued after it would be lost too
        if (chan.dead) this.failed ??= err;
        waiters.forEach((p) => p.reject(chan.dead ? err : new Error(`encoder: ${err instanceof Error ? err.message : String(err)}`)));
      },
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.chan.close()));
  }
}
