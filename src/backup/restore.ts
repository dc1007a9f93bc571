/**
 * Restore a backup into a directory: directories, files (sparse where the data is zero), symlinks,
 * hard links, FIFOs and device nodes, then owners, modes and times; directories' metadata last,
 * deepest first, so that creating their entries does not change their times again. The filesystem is
 * synced as the restore goes (restore-writeback.ts).
 */
import { mkdirSync } from 'node:fs';
import { chmod, chown, readdir, utimes } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import type { WriterMsg, WriterAck, WriterSetup } from './restore-worker.js';
import { WorkerChannel } from '../util/worker-channel.js';
import { builtUrl } from '../util/built-files.js';
import { join } from 'node:path';
import { FerryError, isErrno } from '../util/errors.js';
import type { MasterKey } from './crypto.js';
import { execProgram } from '../util/exec.js';
import { forEachLimit } from '../util/parallel.js';
import { takeLock } from './lock.js';
import type { Repository } from './repository.js';
import type { BlobLocation } from './pack.js';
import type { TreeNode } from './tree.js';
import { WRITEBACK_STEP, Writeback } from './restore-writeback.js';
import { makeDirs } from '../util/make-dirs.js';

export interface RestoreProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface RestoreOptions {
  onProgress?: (p: RestoreProgress) => void;
  /** Bytes of file data between syncs of the target's filesystem while restoring (default 128 MiB; 0: none, the caller syncs at the end). */
  writebackStep?: number;
}

export interface RestoreResult {
  id: string;
  files: number;
  dirs: number;
  bytes: number;
  durationMs: number;
  /** Things that could not be restored as they were (e.g. owners when not running as root). */
  warnings: string[];
}

const FILES_IN_PARALLEL = 16;
const READ_AHEAD = 3;
/** A writer thread's young generation, in MiB (see Writer). */
const WRITER_YOUNG_MB = 2;
/** Threads creating files: file creation is kernel work that two threads overlap on two cores. */
const WRITERS = Math.max(1, Math.min(4, cpus().length));

/**
 * Seconds as a float, as utimes() wants them. libuv keeps whole microseconds of that float (it
 * truncates time × 10⁶), and a double holds today's times only to about 0.24 µs, so aim at the middle
 * of the wanted microsecond: the result is the recorded time truncated to the microsecond, exactly.
 */
export function nsToSeconds(ns: string): number {
  const b = BigInt(ns);
  const sec = b / 1_000_000_000n;
  const us = (b % 1_000_000_000n) / 1000n;
  return Number(sec) + (Number(us) * 1000 + 500) / 1e9;
}

/** What a restore needs of the repository. */
export type RestoreRepo = Pick<Repository, 'target' | 'codec' | 'url' | 'index' | 'loadSnapshot' | 'loadTree' | 'fetchBlob'>;

export async function runRestore(repo: RestoreRepo, id: string, targetDir: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const started = Date.now();
  const snap = await repo.loadSnapshot(id);
  const release = await takeLock(repo, false, `restore of ${snap.id}`);
  try {
    await repo.index.load(true);
    const nodes = await repo.loadTree(snap);
    const missing = new Set<string>();
    for (const n of nodes) for (const c of n.content ?? []) if (typeof c === 'string' && !repo.index.has(c)) missing.add(c);
    if (missing.size) throw new FerryError('corrupt', `backup ${snap.id} needs ${missing.size} chunks that are missing from ${repo.url}; run verify`, { backup: snap.id });

    await makeDirs(targetDir);
    const existing = await readdir(targetDir);
    if (existing.length) throw new FerryError('exists', `restore: ${targetDir} is not empty`);

    const warnings: string[] = [];
    let ownerWarned = false;
    const own = async (fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        if (!isErrno(err, 'EPERM')) throw err;
        if (!ownerWarned) warnings.push('owners not restored: not permitted (run as root)');
        ownerWarned = true;
      }
    };
    /** A FIFO or device node, with its owner, mode and times. */
    const special = async (n: TreeNode, p: string) => {
      const mode = (n.mode & 0o7777).toString(8);
      if (n.type === 'fifo') await execProgram('mkfifo', ['-m', mode, '--', p]);
      else {
        const r = n.rdev ?? 0;
        const major = ((r >>> 8) & 0xfff) | (Math.floor(r / 2 ** 32) & ~0xfff);
        const minor = (r & 0xff) | ((r >>> 12) & ~0xff & 0xfffff);
        await execProgram('mknod', ['-m', mode, '--', p, n.type === 'char' ? 'c' : 'b', String(major), String(minor)]);
      }
      await own(() => chown(p, n.uid, n.gid));
      await chmod(p, n.mode);
      await utimes(p, nsToSeconds(n.atime ?? n.mtime), nsToSeconds(n.mtime));
    };
    const files = nodes.filter((n) => n.type === 'file');
    const progress: RestoreProgress = { filesDone: 0, filesTotal: nodes.filter((n) => n.type !== 'dir').length, bytesDone: 0, bytesTotal: files.reduce((a, n) => a + (n.size ?? 0), 0) };
    const report = () => opts.onProgress?.({ ...progress });
    report();
    const abs = (n: TreeNode) => (n.path === '.' ? targetDir : join(targetDir, n.path));

    // (synchronous: nothing else runs yet, and 4,000 awaited mkdirs cost a thread-pool round trip each)
    for (const n of nodes) if (n.type === 'dir' && n.path !== '.') mkdirSync(abs(n), { mode: 0o700 });

    const writeback = new Writeback(targetDir, opts.writebackStep ?? WRITEBACK_STEP);
    // from a directory on this host the writers read the packs themselves; from elsewhere (S3) this thread fetches the chunks for them
    const localDir = repo.target.localDir;
    const writer = new Writer(WRITERS, { key: repo.codec.key, local: localDir === undefined ? undefined : { dir: localDir, url: repo.target.url } }, (raw) => writeback.wrote(raw));
    let dirCount = 0;
    try {
      // Symlinks need only their directory: they go to the writers first, while the first chunks are fetched.
      let lane = 0;
      for (const n of nodes) {
        if (n.type !== 'symlink') continue;
        await writer.send({ t: 'symlink', id: lane++, path: abs(n), target: n.target!, uid: n.uid, gid: n.gid, atime: nsToSeconds(n.atime ?? n.mtime), mtime: nsToSeconds(n.mtime) });
        progress.filesDone++;
      }
      let nextId = 0;
      await forEachLimit(files, FILES_IN_PARALLEL, async (n) => {
        const id = nextId++;
        const content = n.content ?? [];
        const fetches: Array<Promise<{ loc: BlobLocation; stored: Buffer }> | undefined> = content.map(() => undefined);
        const fetch = (i: number) => {
          const c = content[i];
          if (localDir === undefined && i < content.length && typeof c === 'string' && !fetches[i]) {
            const p = repo.fetchBlob(c);
            p.catch(() => undefined); // awaited below; avoid an unhandled rejection if we stop early
            fetches[i] = p;
          }
        };
        for (let i = 0; i < READ_AHEAD; i++) fetch(i);
        let opened = false;
        let pos = 0;
        for (let i = 0; i < content.length; i++) {
          fetch(i + READ_AHEAD);
          const c = content[i]!;
          if (typeof c === 'number') {
            pos += c;
            progress.bytesDone += c;
            continue;
          }
          if (!opened) await writer.send({ t: 'open', id, path: abs(n) });
          opened = true;
          let loc: BlobLocation;
          if (localDir !== undefined) {
            loc = repo.index.get(c)!; // (every chunk is in the index: checked above)
            await writer.send({ t: 'read', id, pos, blob: c, pack: loc.pack, offset: loc.offset, length: loc.length, raw: loc.raw });
          } else {
            const fetched = await fetches[i]!;
            fetches[i] = undefined;
            loc = fetched.loc;
            await writer.send({ t: 'write', id, pos, stored: fetched.stored, blob: c, pack: loc.pack, raw: loc.raw });
          }
          pos += loc.raw;
          progress.bytesDone += loc.raw;
          report();
        }
        if (!opened) await writer.send({ t: 'open', id, path: abs(n) });
        await writer.send({ t: 'close', id, size: pos, uid: n.uid, gid: n.gid, mode: n.mode, atime: nsToSeconds(n.atime ?? n.mtime), mtime: nsToSeconds(n.mtime) });
        progress.filesDone++;
        report();
      }, { stopOnError: true });
      await writer.drain();

      // Hard links, once every file they name is written; FIFOs and device nodes.
      for (const n of nodes) {
        if (n.type === 'hardlink') await writer.send({ t: 'link', id: lane++, existing: join(targetDir, n.target!), path: abs(n) });
        else if (n.type === 'fifo' || n.type === 'char' || n.type === 'block') await special(n, abs(n));
        else continue;
        progress.filesDone++;
      }
      await writer.drain();
      report();

      // Directories' owners, modes and times last, when nothing is made inside them any more: deepest first
      // (a directory whose mode takes its owner's search permission away would refuse the changes below it
      // when the restore does not run as root), each depth spread over the writers.
      const byDepth: TreeNode[][] = [];
      for (const n of nodes) if (n.type === 'dir') (byDepth[n.path === '.' ? 0 : n.path.split('/').length] ??= []).push(n);
      for (const level of byDepth.reverse()) {
        for (const n of level ?? []) await writer.send({ t: 'meta', id: lane++, path: abs(n), uid: n.uid, gid: n.gid, mode: n.mode, atime: nsToSeconds(n.atime ?? n.mtime), mtime: nsToSeconds(n.mtime) });
        await writer.drain();
        dirCount += level?.length ?? 0;
      }
    } finally {
      await Promise.all([writer.close(), writeback.stop()]);
    }
    writeback.check();
    if (writer.ownerDenied && !ownerWarned) {
      warnings.push('owners not restored: not permitted (run as root)');
      ownerWarned = true;
    }
    return { id: snap.id, files: progress.filesTotal, dirs: dirCount, bytes: progress.bytesDone, durationMs: Date.now() - started, warnings };
  } finally {
    await release().catch(() => undefined);
  }
}

/**
 * The main thread's end of restore-worker.ts: WRITERS threads, a file always goes to the same one;
 * messages are batched per turn of the event loop, and send() waits while more than 64 MiB of chunk
 * data is queued (moved to the writers, or for them to read).
 */
export class Writer {
  private readonly lanes: Array<{ chan: WorkerChannel<WriterMsg[], WriterAck>; batch: WriterMsg[] }> = [];
  private queuedBytes = 0;
  private waiters: Array<() => void> = [];
  private error: Error | undefined;
  ownerDenied = false;

  /** `onWritten` is told the bytes of file data each answered batch wrote. */
  constructor(
    n: number,
    setup: { key: MasterKey | null; local?: WriterSetup['local'] },
    private readonly onWritten?: (raw: number) => void,
  ) {
    const workerData: WriterSetup = { key: setup.key ? { enc: setup.key.enc, mac: setup.key.mac } : null, local: setup.local };
    for (let i = 0; i < n; i++) {
      // A small young generation: every chunk AES-GCM opens is a new buffer outside V8's heap, freed only when
      // the collector finds its handle dead. With V8's default (16 MiB semi-spaces) tens of MiB of them piled up
      // between collections, and malloc kept handing out fresh pages to fault in; with a 2 MiB one a 1 GiB restore
      // took ~155,000 faults instead of ~210,000, and its CPU and time fell ~5 % (bench/README.md, backup.ts).
      const w = new Worker(builtUrl('backup/restore-worker.js'), { workerData, resourceLimits: { maxYoungGenerationSizeMb: WRITER_YOUNG_MB } });
      this.lanes.push({ chan: new WorkerChannel(w, 'restore writer'), batch: [] });
    }
  }

  /** The writer threads' channels (exposed so that tests can end a writer and see the restore fail). */
  get channels(): Array<WorkerChannel<WriterMsg[], WriterAck>> {
    return this.lanes.map((l) => l.chan);
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    ws.forEach((f) => f());
  }

  private wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  async send(m: WriterMsg): Promise<void> {
    if (this.error) throw this.error;
    const lane = this.lanes[m.id % this.lanes.length]!;
    if (lane.batch.length === 0) setImmediate(() => this.flush(lane));
    lane.batch.push(m);
    if (m.t === 'write') this.queuedBytes += m.stored.byteLength;
    else if (m.t === 'read') this.queuedBytes += m.length;
    while (this.queuedBytes > 64 * 1024 * 1024 && !this.error) await this.wait();
    if (this.error) throw this.error;
  }

  private flush(lane: Writer['lanes'][number]): void {
    if (lane.batch.length === 0) return;
    // a writer that died while idle: fail now, not after drain() has found nothing pending and returned
    if (lane.chan.dead) {
      this.error ??= lane.chan.dead;
      this.wake();
      return;
    }
    const batch = lane.batch;
    lane.batch = [];
    // a chunk read into a buffer of its own moves to the writer instead of being copied (nothing here reads it again)
    const transfer: ArrayBuffer[] = [];
    for (const m of batch) {
      if (m.t !== 'write') continue;
      const b = m.stored;
      if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) transfer.push(b.buffer);
    }
    lane.chan.request(batch, { transfer }).then(
      (a) => {
        this.queuedBytes -= a.bytes;
        if (a.ownerDenied) this.ownerDenied = true;
        if (a.raw) this.onWritten?.(a.raw);
        this.wake();
      },
      (err: unknown) => {
        // a coded error (e.g. 'corrupt' with the pack) as it is; a dead writer as it is
        this.error ??= err instanceof FerryError || lane.chan.dead ? (err as Error) : new Error(`restore: ${(err as Error).message}`);
        this.wake();
      },
    );
  }

  async drain(): Promise<void> {
    for (const l of this.lanes) this.flush(l);
    while (this.lanes.some((l) => l.chan.pending > 0) && !this.error) await this.wait();
    if (this.error) throw this.error;
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.chan.close()));
  }
}
