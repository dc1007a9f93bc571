/** Copies of tree entries with `cp -a` (modes, owners, times, xattrs, sparse files), in batches that report progress. */
import { chmodSync, chownSync, existsSync, utimesSync } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import type { DirEntry } from './manifest.js';
import type { Reflink } from './jobs.js';

/** A batch of at most this many bytes of data (unless one file is larger): progress moves at least this often. */
export const BATCH_BYTES = 64 * 1024 * 1024;

/** Paths in batches that fit on a command line (and hold at most BATCH_BYTES of `sizes`), with their bytes. */
function* batches(rels: string[], sizes?: number[]): Generator<{ batch: string[]; bytes: number }> {
  for (let i = 0; i < rels.length; ) {
    const batch: string[] = [];
    let bytes = 0;
    for (let len = 0; i < rels.length && len < 100_000 && (bytes < BATCH_BYTES || batch.length === 0); i++) {
      batch.push(rels[i]!);
      len += rels[i]!.length + 1;
      bytes += sizes?.[i] ?? 0;
    }
    yield { batch, bytes };
  }
}

/** Told after each batch of copies: how many paths and bytes it held. */
export type OnBatch = (files: number, bytes: number) => void;

/** `cp -a` of paths relative to `cwd` into `dest`, keeping them relative. */
export const cpArgs = (rels: string[], dest: string, reflink: Reflink) => ['-a', `--reflink=${reflink}`, '--parents', '-t', dest, '--', ...rels];

export function cpParents(rels: string[], cwd: string, dest: string, reflink: Reflink): void {
  execFileSync('cp', cpArgs(rels, dest, reflink), { cwd, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
}

/** cpParents in batches; `onFailure` gets a batch that failed (something in it changed meanwhile). */
export function cpBatches(rels: string[], cwd: string, dest: string, reflink: Reflink, onFailure: (batch: string[]) => void, sizes?: number[], onBatch?: OnBatch): void {
  for (const { batch, bytes } of batches(rels, sizes)) {
    try {
      cpParents(batch, cwd, dest, reflink);
    } catch {
      onFailure(batch);
    }
    onBatch?.(batch.length, bytes);
  }
}

/** The same without blocking this thread (so that it can write the manifest meanwhile); resolves to the batches that failed. */
export async function cpBatchesAsync(rels: string[], cwd: string, dest: string, reflink: Reflink, sizes?: number[], onBatch?: OnBatch): Promise<string[][]> {
  const failed: string[][] = [];
  for (const { batch, bytes } of batches(rels, sizes)) {
    await new Promise<void>((resolve) =>
      execFile('cp', cpArgs(batch, dest, reflink), { cwd, maxBuffer: 16 * 1024 * 1024 }, (err) => {
        if (err) failed.push(batch);
        resolve();
      }),
    );
    onBatch?.(batch.length, bytes);
  }
  return failed;
}


export function setDirMeta(dest: string, dirs: DirEntry[]): void {
  // deepest first, after everything inside was made, so that adding entries does not change their times again
  for (let i = dirs.length - 1; i >= 0; i--) {
    const [rel, mode, uid, gid, atimeNs, mtimeNs] = dirs[i]!;
    const p = rel ? `${dest}/${rel}` : dest;
    if (rel && !existsSync(p)) continue;
    chownSync(p, uid, gid);
    chmodSync(p, mode & 0o7777);
    utimesSync(p, Number(atimeNs) / 1e9, Number(mtimeNs) / 1e9);
  }
}
