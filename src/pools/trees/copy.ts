/** Copies of tree entries with `cp -a` (modes, owners, times, xattrs, sparse files), in batches that report progress. */
import { chmodSync, chownSync, existsSync, mkdirSync, utimesSync } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { DirEntry } from './manifest.js';
import type { Reflink } from './jobs.js';

/** A batch of at most this many bytes of data (unless one file is larger): progress moves at least this often. */
export const BATCH_BYTES = 64 * 1024 * 1024;

/** Paths in batches that fit on a command line (and hold at most `most` bytes of `sizes`), with their bytes. */
function* batches(rels: string[], sizes?: number[], most = BATCH_BYTES): Generator<{ batch: string[]; bytes: number }> {
  for (let i = 0; i < rels.length; ) {
    const batch: string[] = [];
    let bytes = 0;
    for (let len = 0; i < rels.length && len < 100_000 && (bytes < most || batch.length === 0); i++) {
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

/**
 * The same without blocking this thread (so that it can write the manifest meanwhile), in batches of at most
 * `most` bytes; resolves to the batches that failed.
 */
export async function cpBatchesAsync(rels: string[], cwd: string, dest: string, reflink: Reflink, sizes?: number[], onBatch?: OnBatch, most = BATCH_BYTES): Promise<string[][]> {
  const failed: string[][] = [];
  for (const { batch, bytes } of batches(rels, sizes, most)) {
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

/** How many `cp` copy what a snapshot or a restore copies: two, on a machine with two cores or more. */
export const COPY_WIDTH = Math.min(2, availableParallelism());

/** Fewer paths than this are copied by one `cp` (a second process costs more than it saves). */
export const PARALLEL_COPY_MIN = 64;

/**
 * cpBatchesAsync by `width` `cp` processes at once (a copy of many small files is system calls: two cores
 * nearly halve it), each taking one run of `rels`. `rels` are in walk order (parents before children, each
 * directory's entries together): a directory with entries in two runs is then above the first entry of the
 * later run, so those directories are made first (0700: a restore's stage and a delta snapshot's tree take
 * directories' modes from the manifest, not from their copies) and two `cp` never race to make one.
 * Each run's batches hold BATCH_BYTES / width, so that progress still moves every BATCH_BYTES copied.
 * Resolves to the batches that failed.
 */
export async function cpParallel(rels: string[], cwd: string, dest: string, reflink: Reflink, width: number, sizes?: number[], onBatch?: OnBatch): Promise<string[][]> {
  if (width < 2 || rels.length < PARALLEL_COPY_MIN) return cpBatchesAsync(rels, cwd, dest, reflink, sizes, onBatch);
  const per = Math.ceil(rels.length / width);
  const runs: Array<Promise<string[][]>> = [];
  for (let k = 0; k < rels.length; k += per) {
    const slash = rels[k]!.lastIndexOf('/');
    if (k > 0 && slash > 0) mkdirSync(`${dest}/${rels[k]!.slice(0, slash)}`, { recursive: true, mode: 0o700 });
    runs.push(cpBatchesAsync(rels.slice(k, k + per), cwd, dest, reflink, sizes?.slice(k, k + per), onBatch, BATCH_BYTES / width));
  }
  return (await Promise.all(runs)).flat();
}

/**
 * Copies of `rels` from the tree of snapshot `holder` (which holds them for snapshot `id`) into `dest`, by
 * cpParallel. A batch that fails is copied again path by path, and the first path that cannot be copied is
 * reported with cp's own words.
 */
export async function copyFromSnapshot(snaps: string, id: string, holder: string, rels: string[], dest: string, reflink: Reflink): Promise<void> {
  const from = `${snaps}/${holder}`;
  for (const batch of await cpParallel(rels, from, dest, reflink, COPY_WIDTH)) {
    for (const rel of batch) {
      try {
        cpParents([rel], from, dest, reflink);
      } catch (err) {
        const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
        throw new Error(`cannot copy ${rel} of snapshot ${id} (held by snapshot ${holder}): ${why}`);
      }
    }
  }
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
