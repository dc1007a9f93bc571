/**
 * Keys, content ids, and the encoding every stored object goes through: compress (zstd or brotli, or
 * stored when that does not help), then seal with AES-256-GCM. See docs/backup-format.md.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { brotliCompress, brotliCompressSync, brotliDecompress, brotliDecompressSync, constants as zc } from 'node:zlib';
import { promisify } from 'node:util';
import { FerryError } from '../util/errors.js';
import { zstdAvailable, zstdCompress, zstdDecompress } from './zstd.js';

const brotli = promisify(brotliCompress);
const unbrotli = promisify(brotliDecompress);

/** The repository's secrets: `enc` encrypts, `mac` names chunks (HMAC-SHA256) and seeds the chunker. */
export interface MasterKey {
  enc: Buffer;
  mac: Buffer;
}

export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string; // base64
}

/** Default scrypt cost: 64 MiB of memory, about a quarter of a second. */
export const DEFAULT_KDF = { N: 1 << 16, r: 8, p: 1 };

export function deriveKey(secret: Buffer, kdf: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(secret, Buffer.from(kdf.salt, 'base64'), 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + 16 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

const NONCE = 12;
const TAG = 16;

/**
 * Random nonces, cut from 4 KiB of the CSPRNG at a time (per thread): one call per 341 nonces instead of
 * one each, whose fixed cost was ~1.5 % of a first backup's CPU. The bytes are the same kind either way.
 */
let nonces = Buffer.alloc(0);
let nonceAt = 0;
function freshNonce(): Buffer {
  if (nonceAt + NONCE > nonces.length) {
    nonces = randomBytes(NONCE * 341);
    nonceAt = 0;
  }
  nonceAt += NONCE;
  return nonces.subarray(nonceAt - NONCE, nonceAt);
}

/**
 * AES-256-GCM: nonce ‖ ciphertext ‖ tag. `aad` binds the ciphertext to its name (e.g. a chunk id). With
 * `head`, that byte is sealed before `plain` (a raw chunk's format byte), which spares joining them first.
 */
export function seal(key: Buffer, plain: Uint8Array, aad?: Uint8Array, head?: number): Buffer {
  const nonce = freshNonce();
  const c = createCipheriv('aes-256-gcm', key, nonce);
  if (aad) c.setAAD(aad);
  const first = head === undefined ? undefined : c.update(Buffer.of(head));
  const body = c.update(plain);
  const fin = c.final();
  return Buffer.concat(first ? [nonce, first, body, fin, c.getAuthTag()] : [nonce, body, fin, c.getAuthTag()]);
}

/** Undo seal(); null when the key is wrong or the data was changed. */
export function unseal(key: Buffer, sealed: Uint8Array, aad?: Uint8Array): Buffer | null {
  if (sealed.length < NONCE + TAG) return null;
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  try {
    const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, NONCE));
    d.setAuthTag(buf.subarray(buf.length - TAG));
    if (aad) d.setAAD(aad);
    const plain = d.update(buf.subarray(NONCE, buf.length - TAG));
    // GCM gives nothing more at the end: no concat, which copied every object once more
    const fin = d.final();
    return fin.length === 0 ? plain : Buffer.concat([plain, fin]);
  } catch {
    return null;
  }
}

export const SEAL_OVERHEAD = NONCE + TAG;

/** The format byte before an object's body (docs/backup-format.md, "Encoding of stored objects"). */
const RAW = 0;
const BROTLI = 1;
const ZSTD = 2;
/** Brotli quality 2 measured best of zlib's codecs: see docs/backup-format.md, "Compression". */
const BROTLI_QUALITY = 2;
/**
 * Below this size, encode() compresses synchronously: zlib's asynchronous API costs a stream object and
 * a thread-pool round trip per call, 5× the work itself for a 10 KiB object. Above it, the thread pool
 * keeps the calling thread (ferryd's event loop) free.
 */
const SYNC_BELOW = 128 * 1024;

function brotliParams(size: number) {
  // A window no larger than the input: brotli allocates per window size.
  const lgwin = Math.max(10, Math.min(22, Math.ceil(Math.log2(size + 1))));
  return { params: { [zc.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [zc.BROTLI_PARAM_LGWIN]: lgwin, [zc.BROTLI_PARAM_SIZE_HINT]: size } };
}

/** Chunks at least this large are probed before they are compressed. */
const PROBE_ABOVE = 64 * 1024;
const PROBE_SLICE = 4096;

/**
 * Whether compressing `plain` is worth trying: large chunks are probed by compressing four 4 KiB slices
 * spread over them (1.6 % of a 1 MiB chunk). Incompressible data (random, already compressed: media,
 * archives, encrypted files) costs brotli nearly as much time as text does and is then stored raw
 * anyway (frame() keeps the compressed form only when it saves 3 %); the probe skips that work. A chunk
 * whose slices save less than 5 % is stored raw, so a chunk that is compressible only outside the
 * slices loses a little compression, never correctness.
 */
export function compressible(plain: Uint8Array): boolean {
  if (plain.length < PROBE_ABOVE) return true;
  const step = Math.floor((plain.length - PROBE_SLICE) / 3);
  const sample = Buffer.allocUnsafe(4 * PROBE_SLICE);
  for (let i = 0; i < 4; i++) sample.set(plain.subarray(i * step, i * step + PROBE_SLICE), i * PROBE_SLICE);
  const z = brotliCompressSync(sample, { params: { [zc.BROTLI_PARAM_QUALITY]: 1, [zc.BROTLI_PARAM_LGWIN]: 16, [zc.BROTLI_PARAM_SIZE_HINT]: sample.length } });
  return z.length < sample.length * 0.95;
}

/**
 * How objects are turned into bytes at rest and back. With a master key: compress, then seal;
 * with encryption 'none': compress only (a one-byte header says how).
 */
export class Codec {
  constructor(readonly key: MasterKey | null) {}

  get encrypted(): boolean {
    return this.key !== null;
  }

  /** The id of a chunk: HMAC-SHA256 under the repository's mac key, plain SHA-256 when unencrypted. */
  id(data: Uint8Array): Buffer {
    return this.key ? createHmac('sha256', this.key.mac).update(data).digest() : createHash('sha256').update(data).digest();
  }

  /** Seed for the chunker's gear table. */
  chunkerSeed(): Buffer {
    return this.key ? createHmac('sha256', this.key.mac).update('ferry chunker seed').digest() : Buffer.from('ferry chunker seed, unencrypted repository');
  }

  /**
   * Everything but chunks (index files, snapshots, pack trailers, locks): brotli, as before zstd, so that
   * a host without zstd, or an older Ferry, still opens the repository, lists it and takes its lock.
   */
  async encode(plain: Uint8Array, aad?: Uint8Array): Promise<Buffer> {
    if (plain.length < 64 || !compressible(plain)) return this.frame(plain, undefined, aad);
    const z = plain.length < SYNC_BELOW ? brotliCompressSync(plain, brotliParams(plain.length)) : await brotli(plain, brotliParams(plain.length));
    return this.frame(plain, z.length < plain.length * 0.97 ? Buffer.concat([Buffer.from([BROTLI]), z]) : undefined, aad);
  }

  /**
   * A chunk (file data or a tree), on the calling thread: zstd, or brotli where zstd is not installed.
   * The encoder workers use this.
   */
  encodeSync(plain: Uint8Array, aad?: Uint8Array): Buffer {
    let framed: Buffer | undefined;
    if (plain.length >= 64) {
      // zstd gives incompressible data up quickly (~2.5 GB/s here, 7× its speed on text): no probe, which
      // cost more over all the chunks it looked at than zstd spends on the ones it would have spared
      if (zstdAvailable()) {
        framed = zstdCompress(plain, 1);
        framed[0] = ZSTD;
      } else if (compressible(plain)) framed = Buffer.concat([Buffer.from([BROTLI]), brotliCompressSync(plain, brotliParams(plain.length))]);
    }
    return this.frame(plain, framed !== undefined && framed.length - 1 < plain.length * 0.97 ? framed : undefined, aad);
  }

  /** Seal `framed` (format byte and compressed body), or `plain` stored raw when compression did not pay. */
  private frame(plain: Uint8Array, framed: Buffer | undefined, aad?: Uint8Array): Buffer {
    if (this.key) return framed ? seal(this.key.enc, framed, aad) : seal(this.key.enc, plain, aad, RAW);
    framed ??= Buffer.concat([Buffer.from([RAW]), plain]);
    // zstd's output is a view of this thread's output buffer, which the next chunk overwrites: a buffer of
    // its own instead (sealing above makes one too)
    if (framed[0] !== ZSTD) return framed;
    const own = Buffer.allocUnsafeSlow(framed.length);
    framed.copy(own);
    return own;
  }

  /**
   * decode() on the calling thread (restore's writer threads use this); throws FerryError('corrupt') when
   * authentication or decompression fails. `size`, when known, is what the object decompresses to: zlib
   * then writes it into one buffer (one byte larger, so that it does not look for more output in a new
   * buffer), not into 16 KiB pieces it joins afterwards.
   */
  decodeSync(stored: Uint8Array, aad: Uint8Array | undefined, what: string, size?: number, reuse = false): Buffer {
    const framed = this.key ? unseal(this.key.enc, stored, aad) : Buffer.from(stored.buffer, stored.byteOffset, stored.length);
    if (!framed || framed.length < 1) throw new FerryError('corrupt', `${what}: authentication failed (data changed or damaged)`);
    const body = framed.subarray(1);
    if (framed[0] === RAW) return body;
    if (framed[0] !== BROTLI && framed[0] !== ZSTD) throw unknownCompression(what, framed[0]);
    try {
      if (framed[0] === ZSTD) return zstdDecompress(body, size, reuse);
      return brotliDecompressSync(body, size ? { chunkSize: Math.max(64, size + 1) } : undefined);
    } catch (err) {
      if (err instanceof FerryError) throw err;
      throw new FerryError('corrupt', `${what}: cannot decompress`);
    }
  }

  /**
   * A chunk from its stored bytes: authenticated (bound to its id), decompressed, and checked against
   * its id and length; FerryError('corrupt') naming the pack otherwise. (Restore's writer threads.) A zstd
   * chunk comes back as a view of this thread's buffer, valid until the next call on this thread: the
   * writer writes it at once (see zstdDecompress).
   */
  openChunkSync(id: string, pack: string, raw: number, stored: Uint8Array): Buffer {
    const c = this.chunkCheck(id, pack, raw);
    let plain: Buffer;
    try {
      plain = this.decodeSync(stored, c.aad, c.what, raw, true);
    } catch (err) {
      throw c.named(err);
    }
    return c.checked(plain);
  }

  /** openChunkSync() with decode(): brotli chunks of earlier versions decompress in the thread pool. */
  async openChunk(id: string, pack: string, raw: number, stored: Uint8Array): Promise<Buffer> {
    const c = this.chunkCheck(id, pack, raw);
    let plain: Buffer;
    try {
      plain = await this.decode(stored, c.aad, c.what, raw);
    } catch (err) {
      throw c.named(err);
    }
    return c.checked(plain);
  }

  /** What openChunk() and openChunkSync() share: the chunk's name, its additional data, and the checks. */
  private chunkCheck(id: string, pack: string, raw: number) {
    const idBuf = Buffer.from(id, 'hex');
    const what = `chunk ${id.slice(0, 16)}… in pack ${pack}`;
    return {
      what,
      aad: this.key ? idBuf : undefined,
      /** Damage named with its pack and chunk; anything else (zstd not installed) as it is. */
      named: (err: unknown) => (err instanceof FerryError && err.code === 'corrupt' ? new FerryError('corrupt', err.message, { ...err.details, pack, blob: id }) : err),
      checked: (plain: Buffer) => {
        if (plain.length !== raw || !this.id(plain).equals(idBuf)) throw new FerryError('corrupt', `${what} does not match its id`, { pack, blob: id });
        return plain;
      },
    };
  }

  /** An object from its stored bytes; `size`, when known (a chunk's length), bounds what zstd may produce. */
  async decode(stored: Uint8Array, aad: Uint8Array | undefined, what: string, size?: number): Promise<Buffer> {
    let framed: Buffer | null;
    if (this.key) framed = unseal(this.key.enc, stored, aad);
    else framed = Buffer.from(stored.buffer, stored.byteOffset, stored.length);
    if (!framed || framed.length < 1) throw new FerryError('corrupt', `${what}: authentication failed (data changed or damaged)`);
    const body = framed.subarray(1);
    if (framed[0] === RAW) return body;
    if (framed[0] !== BROTLI && framed[0] !== ZSTD) throw unknownCompression(what, framed[0]);
    try {
      // zstd decompresses at ~2 GB/s: even a large object costs the calling thread less than a thread-pool trip
      if (framed[0] === ZSTD) return zstdDecompress(body, size);
      return body.length < SYNC_BELOW / 2 ? brotliDecompressSync(body) : await unbrotli(body);
    } catch (err) {
      if (err instanceof FerryError) throw err;
      throw new FerryError('corrupt', `${what}: cannot decompress`);
    }
  }

  async encodeJson(value: unknown, aad?: Uint8Array): Promise<Buffer> {
    return this.encode(Buffer.from(JSON.stringify(value)), aad);
  }

  async decodeJson<T>(stored: Uint8Array, aad: Uint8Array | undefined, what: string): Promise<T> {
    const buf = await this.decode(stored, aad, what);
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch {
      throw new FerryError('corrupt', `${what}: not valid JSON`);
    }
  }
}

/** A format byte this version does not know: damage, or an object written by a newer Ferry. */
function unknownCompression(what: string, byte: number | undefined): FerryError {
  return new FerryError('corrupt', `${what}: unknown compression ${byte} (damaged, or written by a newer version of Ferry: upgrade to read it)`, { format: byte });
}

export function newMasterKey(): MasterKey {
  return { enc: randomBytes(32), mac: randomBytes(32) };
}

/** A key file in keys/: the master key sealed under a key derived from the password. */
export interface KeyFile {
  version: 1;
  created: string;
  host: string;
  kdf: KdfParams;
  data: string; // base64 of seal(derived, JSON {enc, mac})
}

export async function makeKeyFile(master: MasterKey, secret: Buffer, host: string, cost = DEFAULT_KDF): Promise<KeyFile> {
  const kdf: KdfParams = { name: 'scrypt', ...cost, salt: randomBytes(32).toString('base64') };
  const k = await deriveKey(secret, kdf);
  const plain = Buffer.from(JSON.stringify({ enc: master.enc.toString('base64'), mac: master.mac.toString('base64') }));
  return { version: 1, created: new Date().toISOString(), host, kdf, data: seal(k, plain, Buffer.from('ferry key')).toString('base64') };
}

/** The master key, or null when the secret does not open this key file. */
export async function openKeyFile(kf: KeyFile, secret: Buffer): Promise<MasterKey | null> {
  if (kf.kdf?.name !== 'scrypt') return null;
  const k = await deriveKey(secret, kf.kdf);
  const plain = unseal(k, Buffer.from(kf.data, 'base64'), Buffer.from('ferry key'));
  if (!plain) return null;
  const j = JSON.parse(plain.toString('utf8')) as { enc: string; mac: string };
  return { enc: Buffer.from(j.enc, 'base64'), mac: Buffer.from(j.mac, 'base64') };
}
