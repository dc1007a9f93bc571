/** Collects encoded chunks into packs and uploads them, two at a time, with an index file every few packs. */
import { Tasks } from '../util/parallel.js';
import type { Codec } from './crypto.js';
import type { Target } from './target.js';
import type { BlobIndex } from './blob-index.js';
import { EncoderPool, type HeldRef } from './encoder-pool.js';
import type { Chunker } from './chunker.js';
import { PACK_HEADER, PACK_TARGET_SIZE, packPath, sealPack, type BlobRecord, type BlobType, type PackRecord } from './pack.js';

const INDEX_EVERY_PACKS = 8;
/** Closed packs that may wait for the target (two upload at a time): the read stays at most this far ahead. */
const MAX_QUEUED_PACKS = 4;

/** What the uploader needs of a repository. */
export interface PackSink {
  readonly codec: Codec;
  readonly target: Target;
  readonly index: Pick<BlobIndex, 'has' | 'addPack' | 'write'>;
}

/**
 * Packs are uploaded as they fill; an index file is written every few packs and at the end, so an
 * interrupted backup leaves indexed packs the next run reuses.
 */
export class PackUploader {
  /** Ids stored in this run but not yet uploaded. */
  readonly pending = new Set<string>();
  private parts: Buffer[] = [PACK_HEADER];
  private size = PACK_HEADER.length;
  private blobs: BlobRecord[] = [];
  private readonly encodes = new Tasks(64);
  /** The worker threads: they encode, and (made with a chunker) read and cut files. */
  readonly pool: EncoderPool;
  private readonly uploads = new Tasks(2);
  private unindexed: PackRecord[] = [];
  private encodingBytes = 0;
  /** Packs closed and not uploaded yet, and who waits for one of them to go. */
  private queuedPacks = 0;
  private readonly packGone: Array<() => void> = [];
  bytesNew = 0;

  constructor(
    private readonly sink: PackSink,
    private readonly onUploaded: (bytes: number) => void = () => undefined,
    chunker?: Chunker,
  ) {
    this.pool = new EncoderPool(sink.codec.key, undefined, chunker && { chunker, seed: sink.codec.chunkerSeed() });
  }

  has(id: string): boolean {
    return this.sink.index.has(id) || this.pending.has(id);
  }

  /**
   * Queue a chunk; `data` must not change afterwards. With `owned`, its whole ArrayBuffer is handed
   * over (moved to an encoder thread; the caller's view becomes empty). `data` may also be a chunk a
   * read left in a worker (pool.read()), with its size.
   */
  async store(id: string, type: BlobType, data: Buffer | (HeldRef & { size: number }), owned = false): Promise<void> {
    const raw = Buffer.isBuffer(data) ? data.length : data.size;
    this.claim(id, raw);
    // Bound the memory of chunks waiting for an encoder (64 jobs, and 64 MiB), and of closed packs.
    while (this.encodingBytes > 64 * 1024 * 1024) await this.encodes.waitOne();
    await this.packRoom();
    this.encodingBytes += raw;
    await this.encodes.spawn(async () => {
      let enc: Buffer;
      try {
        const aad = this.sink.codec.encrypted ? Buffer.from(id, 'hex') : undefined;
        enc = await (Buffer.isBuffer(data) ? this.pool.encode(data, aad, owned) : this.pool.encodeHeld(data, raw, aad));
      } finally {
        this.encodingBytes -= raw;
      }
      await this.append(id, type, enc, raw);
    });
  }

  /** Queue a chunk a read already encoded (its stored form, `raw` bytes before encoding). */
  async storeEncoded(id: string, type: BlobType, enc: Buffer, raw: number): Promise<void> {
    this.claim(id, raw);
    await this.packRoom();
    await this.append(id, type, enc, raw);
  }

  /** Count a chunk as stored by this run, before any wait: a has() of the same id from now on says yes. */
  private claim(id: string, raw: number): void {
    this.pending.add(id);
    this.bytesNew += raw;
  }

  /**
   * Wait while MAX_QUEUED_PACKS closed packs wait for the target: without this bound the read ran up to a
   * GiB ahead of the upload (all of it in memory), and the progress sat at 100 % read while the upload went on.
   */
  private async packRoom(): Promise<void> {
    while (this.queuedPacks >= MAX_QUEUED_PACKS) await new Promise<void>((r) => this.packGone.push(r));
  }

  private async append(id: string, type: BlobType, enc: Buffer, raw: number): Promise<void> {
    this.blobs.push([id, type, this.size, enc.length, raw]);
    this.parts.push(enc);
    this.size += enc.length;
    if (this.size >= PACK_TARGET_SIZE) await this.closePack();
  }

  /** Also name these (recovered) packs in this run's index files. */
  adopt(packs: readonly PackRecord[]): void {
    this.unindexed.push(...packs);
  }

  private async closePack(): Promise<void> {
    if (this.blobs.length === 0) return;
    const parts = this.parts;
    const blobs = this.blobs;
    this.parts = [PACK_HEADER];
    this.size = PACK_HEADER.length;
    this.blobs = [];
    this.queuedPacks++;
    let handedOver = false;
    try {
      const pack = await sealPack(this.sink.codec, parts, blobs);
      await this.uploads.spawn(async () => {
        try {
          await this.sink.target.put(packPath(pack.id), pack.parts);
          const rec: PackRecord = { id: pack.id, size: pack.size, blobs };
          this.sink.index.addPack(rec);
          for (const b of blobs) this.pending.delete(b[0]);
          this.onUploaded(pack.size);
          this.unindexed.push(rec);
          if (this.unindexed.length >= INDEX_EVERY_PACKS) await this.flushIndex();
        } finally {
          this.packDone();
        }
      });
      handedOver = true;
    } finally {
      if (!handedOver) this.packDone();
    }
  }

  /** A queued pack is uploaded (or failed): let one waiting store() go on. */
  private packDone(): void {
    this.queuedPacks--;
    for (const go of this.packGone.splice(0)) go();
  }

  private async flushIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    await this.sink.index.write(packs);
  }

  /** Upload what is left and write the last index file. */
  async finish(): Promise<void> {
    try {
      await this.encodes.drain();
      await this.closePack();
      await this.uploads.drain();
      await this.flushIndex();
    } finally {
      await this.pool.close();
    }
  }

  /** Wait for running work after a failure (so nothing writes after we return). */
  async abort(): Promise<void> {
    await this.encodes.drain().catch(() => undefined);
    await this.uploads.drain().catch(() => undefined);
    await this.pool.close();
  }
}
