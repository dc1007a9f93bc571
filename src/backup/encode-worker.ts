/**
 * A backup's worker thread (one of a small pool, see EncoderPool): reads files and cuts them into named
 * chunks, and compresses and encrypts the chunks the main thread wants stored. So reading, chunking,
 * hashing, zstd and AES-GCM all run on every core, and the main thread only walks the tree, decides
 * which chunks are new and assembles packs.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { openSync, readSync, closeSync } from 'node:fs';
import { Codec } from './crypto.js';
import { Chunker, type ChunkerParams } from './chunker.js';
import { serveRequests } from '../util/worker-channel.js';

/** Encode one chunk: answered by its stored form. */
export interface EncodeJob {
  data: Uint8Array;
  aad?: Uint8Array;
}

/**
 * Read a file from `offset` (a chunk boundary: 0, or a previous answer's `next`) and cut what was read
 * into chunks: answered by a ReadAnswer. The chunks' bytes stay in this worker, held under a token,
 * until a HeldJob encodes or drops them: only the main thread knows which chunks are new, and a chunk
 * that is not never crosses threads.
 */
export interface ReadJob {
  read: string;
  offset: number;
  /**
   * Encode every chunk at once and answer with its stored form instead of holding it: one message less
   * per file when nearly every chunk is new (a first backup); a chunk the repository turns out to have
   * is then encoded for nothing.
   */
  encode?: true;
}

/** Encode (or, with `drop`, forget) a chunk this worker holds from a read: answered by its stored form (empty when dropped). */
export interface HeldJob {
  token: number;
  aad?: Uint8Array;
  drop?: true;
}

/**
 * The chunks of one read: each a run of zero bytes (its length) or an id (hex), its length and the token
 * it is held under. `next`: where the next read starts, or -1 at the end of the file. `vanished`: the
 * file does not exist (deleted since the scan).
 */
export interface ReadAnswer {
  chunks: Array<number | HeldChunk>;
  next: number;
  vanished?: true;
}

export interface HeldChunk {
  id: string;
  size: number;
  /** Where the chunk is held (0 when it came encoded) */
  token: number;
  /** The stored form, when the read asked for it (`encode`). */
  stored?: Uint8Array;
}

/** A request: a batch of jobs, answered by their results in the same order. */
export type EncodeBatch = Array<EncodeJob | ReadJob | HeldJob>;
export type EncodeResult = Array<Uint8Array | ReadAnswer>;

/** What a worker is started with. */
export interface EncoderSetup {
  key: { enc: Uint8Array; mac: Uint8Array } | null;
  /** The repository's data chunker (params and gear seed): needed for read jobs. */
  chunker?: { params: ChunkerParams; seed: Uint8Array };
}

const EMPTY = new Uint8Array(0);

/**
 * One read job on this thread, with synchronous calls: a window of 2 × max bytes from `offset`, cut into
 * chunks; every chunk but the last of the file ends at least `max` bytes before the window's end, so a
 * cut is never made for want of data (the same cuts as one pass over the whole file).
 */
export function readChunks(
  codec: Codec,
  chunker: Chunker,
  window: Buffer,
  path: string,
  offset: number,
  /**
   * Keeps a chunk and answers the token it is held under, or answers its stored form (ReadJob.encode).
   * `view` is a view into `window`, valid only during the call: a chunk kept must be copied.
   */
  hold: (view: Buffer, id: Buffer) => number | Uint8Array,
  zero: Buffer = Buffer.alloc(chunker.params.max),
): ReadAnswer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { chunks: [], next: -1, vanished: true };
    throw err;
  }
  let filled = 0;
  let eof = false;
  try {
    while (filled < window.length) {
      const n = readSync(fd, window, filled, window.length - filled, offset + filled);
      if (n === 0) {
        eof = true;
        break;
      }
      filled += n;
    }
  } finally {
    closeSync(fd);
  }
  const max = chunker.params.max;
  const chunks: ReadAnswer['chunks'] = [];
  let pos = 0;
  while (pos < filled && (eof || filled - pos >= max)) {
    const n = chunker.cut(window, pos, filled);
    const view = window.subarray(pos, pos + n);
    pos += n;
    if (view.equals(zero.subarray(0, n))) {
      chunks.push(n);
      continue;
    }
    const id = codec.id(view);
    const kept = hold(view, id);
    chunks.push(typeof kept === 'number' ? { id: id.toString('hex'), size: n, token: kept } : { id: id.toString('hex'), size: n, token: 0, stored: kept });
  }
  return { chunks, next: eof && pos >= filled ? -1 : offset + pos };
}

if (!isMainThread) {
  const setup = workerData as EncoderSetup;
  const k = setup.key;
  const codec = new Codec(k ? { enc: Buffer.from(k.enc), mac: Buffer.from(k.mac) } : null);
  const chunker = setup.chunker ? new Chunker(setup.chunker.params, setup.chunker.seed) : undefined;
  let window: Buffer | undefined;
  let zero: Buffer | undefined;
  const held = new Map<number, Buffer>();
  let nextToken = 1;
  const hold = (view: Buffer) => {
    const data = Buffer.allocUnsafeSlow(view.length);
    view.copy(data);
    held.set(nextToken, data);
    return nextToken++;
  };
  serveRequests<EncodeBatch, EncodeResult>((jobs, ctx) => {
    const out: EncodeResult = [];
    const transfer = new Set<ArrayBuffer>();
    // Results that own their ArrayBuffer (all but the smallest) are moved back, not copied.
    const move = (o: Uint8Array) => {
      if (o.byteOffset === 0 && o.byteLength === o.buffer.byteLength && o.buffer instanceof ArrayBuffer) transfer.add(o.buffer);
    };
    for (const j of jobs) {
      if ('read' in j) {
        if (!chunker) throw new Error('encoder: read job without a chunker');
        window ??= Buffer.allocUnsafeSlow(2 * chunker.params.max);
        zero ??= Buffer.alloc(chunker.params.max);
        // (the stored form is a buffer of its own, never a view of the window: sealed, or zstd's output copied, or raw framed)
        const encodeNow = (view: Buffer, id: Buffer) => {
          const e = codec.encodeSync(view, codec.encrypted ? id : undefined);
          move(e);
          return e;
        };
        out.push(readChunks(codec, chunker, window, j.read, j.offset, j.encode ? encodeNow : hold, zero));
      } else if ('token' in j) {
        const data = held.get(j.token);
        if (!data) throw new Error(`encoder: no chunk held under token ${j.token}`);
        held.delete(j.token);
        if (j.drop) out.push(EMPTY);
        else {
          const e = codec.encodeSync(data, j.aad);
          move(e);
          out.push(e);
        }
      } else {
        const e = codec.encodeSync(j.data, j.aad);
        move(e);
        out.push(e);
      }
    }
    ctx.transfer.push(...transfer);
    return out;
  });
}
