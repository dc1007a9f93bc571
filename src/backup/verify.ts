/** verify: every chunk a backup needs is indexed and its pack exists; with readData, every byte is read and checked. */
import { createHash } from 'node:crypto';
import { FerryError, errorMessage } from '../util/errors.js';
import { forEachLimit } from '../util/parallel.js';
import { PACK_FOOTER, PACK_HEADER, packPath, type PackRecord } from './pack.js';
import { chunkUsers } from './usage.js';
import type { Repository } from './repository.js';

/** What a verify needs of the repository. */
export type VerifyRepo = Pick<Repository, 'target' | 'index' | 'loadSnapshots' | 'loadTree' | 'decodeBlob'>;

export interface VerifyOptions {
  /** Read every pack and authenticate and hash every chunk (slow: reads the whole repository). */
  readData?: boolean;
  onProgress?: (p: { packsDone: number; packsTotal: number; bytesDone: number; bytesTotal: number }) => void;
}

export interface VerifyProblem {
  kind: 'missing-pack' | 'missing-chunk' | 'corrupt-pack' | 'unreadable-backup' | 'unindexed-pack';
  /** The pack concerned, if any. */
  pack?: string;
  /** Some of the chunks concerned (at most 10). */
  chunks?: string[];
  /** Backups that depend on it (ids). */
  backups: string[];
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  backups: number;
  packs: number;
  chunks: number;
  /** Bytes read from packs (readData only). */
  bytesRead: number;
  problems: VerifyProblem[];
}

export async function runVerify(repo: VerifyRepo, opts: VerifyOptions = {}): Promise<VerifyResult> {
  await repo.index.load(true);
  const { users, snaps, unreadable } = await chunkUsers(repo);
  const problems: VerifyProblem[] = [];
  const sorted = (s: Iterable<string>) => [...s].sort();

  // Structure: every referenced chunk is in an index, and its pack exists.
  const byMissingPack = new Map<string, { chunks: string[]; backups: Set<string> }>();
  const missingChunks: { chunks: string[]; backups: Set<string> } = { chunks: [], backups: new Set() };
  const missingPacks = new Set(repo.index.missingPacks);
  for (const [chunk, who] of users) {
    const loc = repo.index.get(chunk);
    if (loc) continue;
    // Not in the usable index: is it in an index entry whose pack is gone?
    const pack = findInMissingPacks(repo, chunk, missingPacks);
    if (pack) {
      let e = byMissingPack.get(pack);
      if (!e) byMissingPack.set(pack, (e = { chunks: [], backups: new Set() }));
      e.chunks.push(chunk);
      for (const b of who) e.backups.add(b);
    } else {
      missingChunks.chunks.push(chunk);
      for (const b of who) missingChunks.backups.add(b);
    }
  }
  for (const [pack, e] of byMissingPack) {
    problems.push({ kind: 'missing-pack', pack, chunks: e.chunks.slice(0, 10), backups: sorted(e.backups), message: `pack ${pack} is missing; it holds ${e.chunks.length} chunks of backups ${sorted(e.backups).join(', ')}` });
  }
  for (const pack of missingPacks) {
    if (!byMissingPack.has(pack)) problems.push({ kind: 'missing-pack', pack, backups: [], message: `pack ${pack} is named by an index but missing (no backup needs it; prune tidies the index)` });
  }
  if (missingChunks.chunks.length) {
    problems.push({ kind: 'missing-chunk', chunks: missingChunks.chunks.slice(0, 10), backups: sorted(missingChunks.backups), message: `${missingChunks.chunks.length} chunks are in no index and no pack; backups ${sorted(missingChunks.backups).join(', ')} are affected` });
  }
  for (const { pack, error } of repo.index.unreadablePacks) {
    problems.push({ kind: 'corrupt-pack', pack, backups: [], message: `pack ${pack} is in no index and its trailer cannot be read: ${error}` });
  }
  for (const { snap, error } of unreadable) {
    if (byMissingPack.size && error instanceof FerryError && error.code === 'corrupt' && /no index/.test(error.message)) continue; // reported above
    problems.push({ kind: 'unreadable-backup', backups: [snap.id], pack: (error as FerryError).details?.pack as string | undefined, message: `backup ${snap.id}: its manifest cannot be read: ${errorMessage(error)}` });
  }

  // Data: read every pack, check its name (SHA-256 of its bytes), its trailer, and every chunk.
  let bytesRead = 0;
  if (opts.readData) {
    const packs = [...repo.index.packs.entries()];
    const bytesTotal = packs.reduce((a, [, s]) => a + s, 0);
    let packsDone = 0;
    const packUsers = (rec: PackRecord | undefined) => {
      const s = new Set<string>();
      for (const b of rec?.blobs ?? []) {
        const loc = repo.index.get(b[0]);
        for (const u of loc ? users.get(b[0]) ?? [] : []) s.add(u);
      }
      return s;
    };
    await forEachLimit(packs, 2, async ([pack, size]) => {
      const rec = repo.index.indexedPacks.get(pack) ?? repo.index.recoveredPacks.find((p) => p.id === pack);
      const bad: string[] = [];
      let why = '';
      try {
        const buf = await repo.target.get(packPath(pack));
        bytesRead += buf.length;
        if (createHash('sha256').update(buf).digest('hex') !== pack) why = 'its content does not match its name (SHA-256)';
        if (!buf.subarray(0, PACK_HEADER.length).equals(PACK_HEADER) || !buf.subarray(buf.length - PACK_FOOTER.length).equals(PACK_FOOTER)) why ||= 'bad header or trailer';
        for (const [id, type, offset, length, raw] of rec?.blobs ?? []) {
          try {
            await repo.decodeBlob(id, { pack, type, offset, length, raw }, buf.subarray(offset, offset + length));
          } catch (err) {
            if (!(err instanceof FerryError && err.code === 'corrupt')) throw err;
            bad.push(id);
          }
        }
        if (buf.length !== size) why ||= `size ${buf.length} differs from the listing (${size})`;
      } catch (err) {
        if (err instanceof FerryError && err.code === 'not_found') why = 'it vanished while being read';
        else throw err;
      }
      if (why || bad.length) {
        // The backups that depend on this pack: users of its chunks (those the index resolves to it).
        const affected = new Set<string>();
        for (const id of bad.length ? bad : (rec?.blobs ?? []).map((b) => b[0])) {
          if (repo.index.get(id)?.pack === pack) for (const u of users.get(id) ?? []) affected.add(u);
        }
        if (!bad.length) for (const u of packUsers(rec)) affected.add(u);
        const list = sorted(affected);
        problems.push({
          kind: 'corrupt-pack',
          pack,
          chunks: bad.slice(0, 10),
          backups: list,
          message: `pack ${pack} is damaged (${bad.length ? `${bad.length} chunks fail their check` : why}); ${list.length ? `backups depending on it: ${list.join(', ')}` : 'no backup depends on it'}`,
        });
      }
      packsDone++;
      opts.onProgress?.({ packsDone, packsTotal: packs.length, bytesDone: bytesRead, bytesTotal });
    }, { stopOnError: true });
  }
  return { ok: problems.length === 0, backups: snaps.length, packs: repo.index.packs.size, chunks: repo.index.size, bytesRead, problems };
}

function findInMissingPacks(repo: VerifyRepo, chunk: string, missing: Set<string>): string | undefined {
  for (const pack of missing) {
    const rec = repo.index.indexedPacks.get(pack);
    if (rec?.blobs.some((b) => b[0] === chunk)) return pack;
  }
  return undefined;
}
