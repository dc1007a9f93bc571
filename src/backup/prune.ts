/** prune: remove the packs no backup needs, under the exclusive lock, in an order a crash cannot hurt. */
import { FerryError, errorMessage } from '../util/errors.js';
import { forEachLimit } from '../util/parallel.js';
import { FileTarget } from './file-target.js';
import { packPath, type PackRecord } from './pack.js';
import { takeLock, removeStaleLocks } from './lock.js';
import { chunkUsers } from './usage.js';
import type { Repository } from './repository.js';

/** What a prune needs of the repository. */
export type PruneRepo = Pick<Repository, 'target' | 'codec' | 'index' | 'loadSnapshots' | 'loadTree'>;

export interface PruneResult {
  packsRemoved: number;
  bytesRemoved: number;
  packsKept: number;
  /** Kept packs also hold this many bytes of chunks no backup needs (packs are not rewritten). */
  bytesUnusedKept: number;
  indexFilesRewritten: number;
  staleLocksRemoved: number;
}

/**
 * Remove every pack none of whose chunks a backup references, and rewrite the index to name only the
 * packs that remain. Packs that are partly used are kept whole (not repacked). Takes the exclusive
 * lock: no backup can run meanwhile (so packs of a backup in progress are never taken for garbage).
 */
export async function runPrune(repo: PruneRepo): Promise<PruneResult> {
  const release = await takeLock(repo, true, 'prune');
  try {
    const staleLocksRemoved = await removeStaleLocks(repo);
    await repo.index.load(true);
    const { users, unreadable } = await chunkUsers(repo);
    if (unreadable.length) {
      throw new FerryError('corrupt', `prune refused: the manifest of backup ${unreadable[0]!.snap.id} cannot be read (${errorMessage(unreadable[0]!.error)}); run verify, and remove broken backups first`);
    }
    const keep: PackRecord[] = [];
    const drop: string[] = [];
    let bytesRemoved = 0;
    let bytesUnusedKept = 0;
    const all = new Map<string, PackRecord>();
    for (const p of repo.index.indexedPacks.values()) if (repo.index.packs.has(p.id)) all.set(p.id, p);
    for (const p of repo.index.recoveredPacks) all.set(p.id, p);
    for (const p of all.values()) {
      // A chunk counts as used in the pack the index resolves it to (duplicates elsewhere are garbage).
      const used = p.blobs.filter((b) => users.has(b[0]) && repo.index.get(b[0])?.pack === p.id);
      if (used.length === 0) {
        drop.push(p.id);
        bytesRemoved += p.size;
      } else {
        keep.push(p);
        const usedSet = new Set(used);
        bytesUnusedKept += p.blobs.filter((b) => !usedSet.has(b)).reduce((a, b) => a + b[3], 0);
      }
    }
    // Packs with unreadable trailers and no index: nothing can reference their chunks.
    for (const { pack } of repo.index.unreadablePacks) {
      drop.push(pack);
      bytesRemoved += repo.index.packs.get(pack) ?? 0;
    }
    // New index first, then drop the old ones, then the packs: a crash at any point leaves a
    // consistent repository (at worst unreferenced packs, which the next prune removes).
    const oldIndexFiles = [...repo.index.indexFiles];
    const PER_INDEX = 512;
    const newIndexFiles = new Set<string>();
    for (let i = 0; i < keep.length; i += PER_INDEX) newIndexFiles.add(await repo.index.write(keep.slice(i, i + PER_INDEX)));
    const obsolete = oldIndexFiles.filter((f) => !newIndexFiles.has(f));
    await forEachLimit(obsolete, 8, (f) => repo.target.remove(`index/${f}`), { stopOnError: true });
    await forEachLimit(drop, 8, (p) => repo.target.remove(packPath(p)), { stopOnError: true });
    if (repo.target instanceof FileTarget) await repo.target.removeTemporaries();
    await repo.index.load(true);
    return { packsRemoved: drop.length, bytesRemoved, packsKept: keep.length, bytesUnusedKept, indexFilesRewritten: newIndexFiles.size, staleLocksRemoved };
  } finally {
    await release().catch(() => undefined);
  }
}
