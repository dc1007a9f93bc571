/** The repository's index: which pack holds each chunk, from the index files and the packs' own trailers. */
import { createHash } from 'node:crypto';
import { FerryError, errorMessage } from '../util/errors.js';
import { forEachLimit } from '../util/parallel.js';
import type { Codec } from './crypto.js';
import { nameOf, type Target } from './target.js';
import { readPackTrailer, type BlobLocation, type PackRecord } from './pack.js';

const INDEX_AAD = Buffer.from('ferry index');

/**
 * What the target holds, as last loaded, plus what this process uploaded since. Only load(), addPack()
 * and write() change it; the rest of the engine reads it.
 */
export class BlobIndex {
  private readonly blobs = new Map<string, BlobLocation>();
  private packSizes = new Map<string, number>();
  private readonly indexed = new Map<string, PackRecord>();
  private files: string[] = [];
  private recovered: PackRecord[] = [];
  private missing: string[] = [];
  private unreadable: Array<{ pack: string; error: string }> = [];
  private loaded = false;

  constructor(
    private readonly target: Target,
    private readonly codec: Codec,
  ) {}

  has(id: string): boolean {
    return this.blobs.has(id);
  }

  /** Where a chunk is, or undefined. */
  get(id: string): BlobLocation | undefined {
    return this.blobs.get(id);
  }

  /** Chunks known. */
  get size(): number {
    return this.blobs.size;
  }

  /** Packs present in the target (from the last listing, plus uploads since), with their sizes. */
  get packs(): ReadonlyMap<string, number> {
    return this.packSizes;
  }

  /** Packs named by an index file. */
  get indexedPacks(): ReadonlyMap<string, PackRecord> {
    return this.indexed;
  }

  /** Index files read or written. */
  get indexFiles(): readonly string[] {
    return this.files;
  }

  /** Complete packs that no index names yet (an interrupted backup, or one in progress elsewhere). */
  get recoveredPacks(): readonly PackRecord[] {
    return this.recovered;
  }

  /** Packs an index names that are not in the target. */
  get missingPacks(): readonly string[] {
    return this.missing;
  }

  /** Packs whose trailer could not be read. */
  get unreadablePacks(): ReadonlyArray<{ pack: string; error: string }> {
    return this.unreadable;
  }

  /** Read every index file, list the packs, and recover packs no index names (from their trailers). */
  async load(force = false): Promise<void> {
    if (this.loaded && !force) return;
    this.blobs.clear();
    this.indexed.clear();
    this.recovered = [];
    this.missing = [];
    this.unreadable = [];
    const [indexObjs, packObjs] = await Promise.all([this.target.list('index'), this.target.list('data')]);
    this.packSizes = new Map(packObjs.map((o) => [nameOf(o.name), o.size]));
    this.files = [];
    await forEachLimit(
      indexObjs,
      8,
      async (o) => {
        const id = nameOf(o.name);
        let doc: { packs: PackRecord[] };
        try {
          doc = await this.codec.decodeJson<{ packs: PackRecord[] }>(await this.target.get(o.name), INDEX_AAD, `index ${id}`);
        } catch (err) {
          if (err instanceof FerryError && err.code === 'not_found') return; // removed by a prune meanwhile
          throw err;
        }
        this.files.push(id);
        for (const p of doc.packs) this.indexed.set(p.id, p);
      },
      { stopOnError: true },
    );
    for (const p of this.indexed.values()) {
      if (!this.packSizes.has(p.id)) {
        this.missing.push(p.id);
        continue;
      }
      this.addBlobs(p);
    }
    const unindexed = [...this.packSizes.keys()].filter((id) => !this.indexed.has(id));
    await forEachLimit(unindexed, 4, async (id) => {
      try {
        const rec = await readPackTrailer(this.target, this.codec, id, this.packSizes.get(id)!);
        this.recovered.push(rec);
        this.addBlobs(rec);
      } catch (err) {
        this.unreadable.push({ pack: id, error: errorMessage(err) });
      }
    });
    this.loaded = true;
  }

  /** A pack this process just stored: its chunks can be found from now on. */
  addPack(p: PackRecord): void {
    this.packSizes.set(p.id, p.size);
    this.addBlobs(p);
  }

  private addBlobs(p: PackRecord): void {
    for (const [id, type, offset, length, raw] of p.blobs) {
      if (!this.blobs.has(id)) this.blobs.set(id, { pack: p.id, type, offset, length, raw });
    }
  }

  /** Write an index file naming these packs; returns its id. */
  async write(packs: PackRecord[]): Promise<string> {
    const body = await this.codec.encodeJson({ version: 1, packs }, INDEX_AAD);
    const id = createHash('sha256').update(body).digest('hex');
    await this.target.put(`index/${id}`, body);
    for (const p of packs) this.indexed.set(p.id, p);
    this.files.push(id);
    return id;
  }
}
