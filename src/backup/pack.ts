/** The pack format: chunks end to end between a header and a trailer that lists them (docs/backup-format.md). */
import { createHash } from 'node:crypto';
import { FerryError } from '../util/errors.js';
import type { Codec } from './crypto.js';
import type { Target } from './target.js';

export const PACK_HEADER = Buffer.from('FERRYPK1');
export const PACK_FOOTER = Buffer.from('FERRYEND');
/** Packs are closed once they hold this much. */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;

export type BlobType = 'd' | 't'; // data chunk, tree chunk

/** [id, type, offset, length, raw length], as stored in index files and pack trailers. */
export type BlobRecord = [id: string, type: BlobType, offset: number, length: number, raw: number];

export interface BlobLocation {
  pack: string;
  type: BlobType;
  offset: number;
  length: number;
  raw: number;
}

export interface PackRecord {
  id: string;
  size: number;
  blobs: BlobRecord[];
}

/** A chunk's stored bytes ended before their length: the pack was cut short. */
export function truncatedChunk(blob: string, pack: string): FerryError {
  return new FerryError('corrupt', `chunk ${blob.slice(0, 16)}… in pack ${pack} is truncated`, { pack, blob });
}

/** Where a pack is stored in the target. */
export function packPath(id: string): string {
  return `data/${id.slice(0, 2)}/${id}`;
}

const TRAILER_AAD = Buffer.from('ferry pack trailer');

/**
 * A whole pack from its encoded chunks (`parts` starts with PACK_HEADER; `blobs` gives their offsets):
 * the parts, the encoded trailer, its length and the footer, left in parts (a target writes them one
 * after the other). Its id is the SHA-256 of the whole.
 */
export async function sealPack(codec: Codec, parts: Buffer[], blobs: BlobRecord[]): Promise<{ id: string; parts: Buffer[]; size: number }> {
  const trailer = await codec.encodeJson(blobs, TRAILER_AAD);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(trailer.length);
  const all = [...parts, trailer, len, PACK_FOOTER];
  const hash = createHash('sha256');
  let size = 0;
  for (const p of all) {
    hash.update(p);
    size += p.length;
  }
  return { id: hash.digest('hex'), parts: all, size };
}

/** A stored pack's chunk list, read from its trailer (how packs that no index names are recovered). */
export async function readPackTrailer(target: Target, codec: Codec, id: string, size: number): Promise<PackRecord> {
  const what = `pack ${id}`;
  if (size < PACK_HEADER.length + 12) throw new FerryError('corrupt', `${what} is truncated (${size} bytes)`);
  const tail = await target.getRange(packPath(id), size - 12, 12);
  if (!tail.subarray(4).equals(PACK_FOOTER)) throw new FerryError('corrupt', `${what} has no trailer (truncated or damaged)`);
  const len = tail.readUInt32LE(0);
  if (len > size - 12 - PACK_HEADER.length) throw new FerryError('corrupt', `${what}: bad trailer length`);
  const body = await target.getRange(packPath(id), size - 12 - len, len);
  const blobs = await codec.decodeJson<BlobRecord[]>(body, TRAILER_AAD, what);
  return { id, size, blobs };
}
