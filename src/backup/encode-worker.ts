/**
 * Compresses and encrypts chunks off the main thread (one of a small pool, see EncoderPool): brotli and
 * AES-GCM of a backup's new data are most of its CPU time, and the main thread is busy reading files,
 * chunking and hashing.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { Codec } from './crypto.js';
import { serveRequests } from '../util/worker-channel.js';

/** A request: a batch of chunks, answered by their encoded forms in the same order. */
export type EncodeBatch = Array<{ data: Uint8Array; aad?: Uint8Array }>;

if (!isMainThread) {
  const k = workerData as { enc: Uint8Array; mac: Uint8Array } | null;
  const codec = new Codec(k ? { enc: Buffer.from(k.enc), mac: Buffer.from(k.mac) } : null);
  serveRequests<EncodeBatch, Uint8Array[]>((blobs, ctx) => {
    const out = blobs.map((b) => codec.encodeSync(b.data, b.aad));
    // Results that own their ArrayBuffer (all but the smallest) are moved back, not copied.
    const transfer = new Set<ArrayBuffer>();
    for (const o of out) if (o.byteOffset === 0 && o.byteLength === o.buffer.byteLength && o.buffer instanceof ArrayBuffer) transfer.add(o.buffer);
    ctx.transfer.push(...transfer);
    return out;
  });
}
