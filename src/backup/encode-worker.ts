/**
 * Compresses and encrypts chunks off the main thread (one of a small pool, see EncoderPool): brotli and
 * AES-GCM of a backup's new data are most of its CPU time, and the main thread is busy reading files,
 * chunking and hashing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Codec } from './crypto.js';

export interface EncodeJob {
  seq: number;
  blobs: Array<{ data: Uint8Array; aad?: Uint8Array }>;
}

if (parentPort) {
  const k = workerData as { enc: Uint8Array; mac: Uint8Array } | null;
  const codec = new Codec(k ? { enc: Buffer.from(k.enc), mac: Buffer.from(k.mac) } : null);
  const port = parentPort;
  port.on('message', (job: EncodeJob) => {
    try {
      const out = job.blobs.map((b) => codec.encodeSync(b.data, b.aad));
      // Results that own their ArrayBuffer (all but the smallest) are moved back, not copied.
      const transfer = new Set<ArrayBuffer>();
      for (const o of out) if (o.byteOffset === 0 && o.byteLength === o.buffer.byteLength && o.buffer instanceof ArrayBuffer) transfer.add(o.buffer);
      port.postMessage({ seq: job.seq, out }, [...transfer]);
    } catch (err) {
      port.postMessage({ seq: job.seq, error: err instanceof Error ? err.message : String(err) });
    }
  });
}
