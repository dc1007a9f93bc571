/**
 * One backup: scan the tree, read changed files through the chunker, store the chunks the repository
 * lacks in packs, store the manifest, and write the snapshot file last.
 */
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { FerryError, isErrno } from '../util/errors.js';
import { StreamChunker } from './chunker.js';
import { scan, serializeTree, type TreeNode, type ScannedNode } from './tree.js';
import { Tasks } from '../util/parallel.js';
import { PackUploader } from './pack-uploader.js';
import { takeLock } from './lock.js';
import type { BackupInfo, Repository, SnapshotFile } from './repository.js';
import { ChildReader, localReader, type FileReader, type ReadHandle } from './file-reader.js';

export interface BackupProgress {
  /**
   * 'scan': files are read while the tree is still being walked, and filesTotal/bytesTotal are what
   * the walk has found so far; 'files': the totals are final; 'finish': storing the manifest.
   */
  phase: 'scan' | 'files' | 'finish';
  filesDone: number;
  /** Non-directory entries (files, symlinks, hard links, special files). */
  filesTotal: number;
  /** Bytes of regular files handled (read, or known unchanged). */
  bytesDone: number;
  bytesTotal: number;
  /** Bytes actually read from the volume (unchanged files are not read). */
  bytesRead: number;
  /** Bytes written to the target so far (packs). */
  bytesUploaded: number;
}

export interface BackupOptions {
  /** The volume's name; backups are grouped by it. */
  volume: string;
  /** The host (Ferry node) the backup is taken on; default: hostname(). */
  node?: string;
  /** The Ferry snapshot the directory is (recorded, not interpreted). */
  snapshot?: string;
  tags?: string[];
  /**
   * The previous backup to compare with: files whose size, mtime, ctime and inode are unchanged are
   * not read again. Default: the latest backup of the same volume (preferring the same node);
   * false: read everything.
   */
  parent?: string | false;
  /**
   * A file is unchanged since the parent when its size, mtime, ctime and inode are (as restic): mtime and
   * size alone miss a write that kept both (mtime can be set back by anyone; ctime cannot). For a tree that
   * is a copy (a snapshot of a hard-link or reflink pool), whose inodes and ctimes are the copy's, `identity`
   * gives each file's inode and ctime in the live volume (its snapshot's manifest): those are recorded and
   * compared instead. A file it does not know is read again.
   */
  identity?: (path: string) => { ino: number; ctime: string } | undefined;
  /**
   * The directory is on a share that may stop answering (a shared pool): every file is opened and read
   * in a child process (file-reader.ts says why), never in ferryd's.
   */
  mayHang?: boolean;
  /**
   * The directory does not change while it is read (a snapshot): a file that vanishes means the snapshot was
   * removed under the backup, and the backup fails naming this, rather than be recorded without the file.
   */
  fixed?: string;
  onProgress?: (p: BackupProgress) => void;
}

/** What a backup needs of the repository. */
export type BackupRepo = Pick<Repository, 'target' | 'codec' | 'index' | 'chunker' | 'treeChunker' | 'loadSnapshot' | 'loadSnapshots' | 'loadTree' | 'writeSnapshot' | 'info'>;

const ZERO = Buffer.alloc(8 * 1024 * 1024);

export async function runBackup(repo: BackupRepo, dir: string, opts: BackupOptions): Promise<BackupInfo> {
  if (!opts.volume) throw new FerryError('invalid', 'backup: volume is required');
  const started = Date.now();
  // a scanned path is relative and normal: joined without path.join's normalising (~0.5 µs a file)
  const base = resolve(dir);
  const pathOf = (n: ScannedNode) => (base === '/' ? `/${n.path}` : `${base}/${n.path}`);
  const time = new Date(started).toISOString();
  const node = opts.node ?? hostname();
  const release = await takeLock(repo, false, `backup of ${opts.volume}`);
  const writtenAtStart = repo.target.bytesWritten;
  let uploader: PackUploader | undefined;
  const reader: FileReader = opts.mayHang ? new ChildReader({ what: `backup of ${opts.volume}` }) : localReader;
  try {
    await repo.index.load(true);
    const progress: BackupProgress = { phase: 'scan', filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0, bytesRead: 0, bytesUploaded: 0 };
    const report = () => opts.onProgress?.({ ...progress });
    report();
    // The parent's files, by path, for change detection.
    const parentSnap = await pickParent(repo, opts, node);
    const previous = new Map<string, TreeNode>();
    if (parentSnap) for (const n of await repo.loadTree(parentSnap)) if (n.type === 'file') previous.set(n.path, n);

    // Files of a local directory are read, cut and hashed in the uploader's worker threads (so all of
    // the work is spread over the cores); a share that may hang is read through `reader` (a child process).
    uploader = new PackUploader(
      repo,
      (bytes) => {
        progress.bytesUploaded += bytes;
        report();
      },
      opts.mayHang ? undefined : repo.chunker,
    );
    const up = uploader;
    // Packs an interrupted run left behind are reused; name them in this run's index.
    up.adopt(repo.index.recoveredPacks);

    // On a share that may hang, files are read several at a time through one of two 16 MiB chunker
    // windows, so that the share's latency overlaps with hashing and compression.
    const chunkers = [new StreamChunker(repo.chunker), new StreamChunker(repo.chunker)];
    const waiting: Array<(c: StreamChunker) => void> = [];
    const takeChunker = () => new Promise<StreamChunker>((resolve) => (chunkers.length ? resolve(chunkers.pop()!) : waiting.push(resolve)));
    const giveChunker = (c: StreamChunker) => (waiting.length ? waiting.shift()!(c) : chunkers.push(c));
    const vanished = new Set<ScannedNode>();
    const single = repo.chunker.params.min;

    const zeroRun = (content: Array<string | number>, len: number) => {
      const last = content[content.length - 1];
      if (typeof last === 'number') content[content.length - 1] = last + len;
      else content.push(len);
    };
    /** A chunk cut on this thread (a share that may hang); `chunk` is a view into a chunker's window. */
    const addChunk = async (content: Array<string | number>, chunk: Buffer) => {
      progress.bytesRead += chunk.length;
      progress.bytesDone += chunk.length;
      if (chunk.equals(ZERO.subarray(0, chunk.length))) return zeroRun(content, chunk.length);
      const id = repo.codec.id(chunk).toString('hex');
      content.push(id);
      if (!up.has(id)) {
        const data = Buffer.allocUnsafeSlow(chunk.length); // an ArrayBuffer of its own: moved, not copied, to an encoder
        chunk.copy(data);
        await up.store(id, 'd', data, true);
      }
    };

    /** Large files being read in the workers: at most 4 (each read holds up to 16 MiB of chunks there). */
    const large = new Tasks(4);
    // Reads ask the workers to encode every chunk at once (ReadJob.encode) while nearly all chunks read
    // are new: `fresh` is the share of new ones, decaying over the last ~50 chunks; a backup into an empty
    // repository starts out assuming they all are.
    let fresh = repo.index.size === 0 ? 1 : 0;
    const seen = (isNew: boolean) => (fresh = fresh * 0.98 + (isNew ? 0.02 : 0));
    const readInWorkers = async (n: ScannedNode): Promise<void> => {
      const content: Array<string | number> = [];
      let size = 0;
      const path = pathOf(n);
      for (let offset = 0; offset >= 0; ) {
        const { answer: a, lane } = await up.pool.read(path, offset, fresh >= 0.9);
        if (a.vanished) {
          vanished.add(n); // deleted since the scan (or while it was read)
          progress.filesDone++;
          return;
        }
        for (const c of a.chunks) {
          if (typeof c === 'number') {
            zeroRun(content, c);
            size += c;
          } else {
            content.push(c.id);
            size += c.size;
            const known = up.has(c.id);
            seen(!known);
            if (c.stored) {
              if (!known) await up.storeEncoded(c.id, 'd', Buffer.from(c.stored.buffer, c.stored.byteOffset, c.stored.byteLength), c.size);
            } else if (known) up.pool.dropHeld({ lane, token: c.token });
            else await up.store(c.id, 'd', { lane, token: c.token, size: c.size });
          }
        }
        const got = a.chunks.reduce<number>((t, c) => t + (typeof c === 'number' ? c : c.size), 0);
        progress.bytesRead += got;
        progress.bytesDone += got;
        offset = a.next;
        if (offset >= 0) report();
      }
      // A file that grew or shrank while being read is recorded as read.
      progress.bytesDone += (n.size ?? 0) - size;
      n.size = size;
      n.content = content;
      progress.filesDone++;
      report();
    };

    const readFile = async (n: ScannedNode): Promise<void> => {
      if (!opts.mayHang) {
        if (n.size! < single) return readInWorkers(n);
        let done!: () => void;
        const finished = new Promise<void>((r) => (done = r));
        let failure: unknown;
        await large.spawn(() => readInWorkers(n).catch((err: unknown) => void (failure = err)).finally(done));
        await finished;
        if (failure) throw failure;
        return;
      }
      // A share that may hang: through the reader's child process, cut and hashed here.
      const content: Array<string | number> = [];
      let size = 0;
      {
        let fh: ReadHandle;
        try {
          fh = await reader.open(pathOf(n));
        } catch (err) {
          if (isErrno(err, 'ENOENT')) {
            vanished.add(n);
            progress.filesDone++;
            return;
          }
          throw err;
        }
        const sc = await takeChunker();
        try {
          let pos = 0;
          sc.reset(async (b, o, l) => {
            const bytesRead = await fh.read(b, o, l, pos);
            pos += bytesRead;
            return bytesRead;
          });
          for (let chunk = await sc.next(); chunk; chunk = await sc.next()) {
            size += chunk.length;
            await addChunk(content, chunk);
            if (chunk.length >= 1024 * 1024) report();
          }
        } finally {
          giveChunker(sc);
          await fh.close();
        }
      }
      // A file that grew or shrank while being read is recorded as read.
      progress.bytesDone += (n.size ?? 0) - size;
      n.size = size;
      n.content = content;
      progress.filesDone++;
      report();
    };

    // Files are read while the walk goes on (it waits whenever 64 files are being read: small ones are
    // read and hashed in batches in the workers; at most 4 large ones, see above).
    const files = new Tasks(opts.mayHang ? 8 : 64);
    const onNode = async (n: ScannedNode) => {
      if (n.type === 'dir') return;
      progress.filesTotal++;
      if (n.type !== 'file') {
        progress.filesDone++;
        return;
      }
      progress.bytesTotal += n.size!;
      if (opts.identity) {
        const live = opts.identity(n.path);
        // (the copy's own inode and ctime, when the live ones are unknown, never match a recorded pair: read again)
        if (live?.ctime) {
          n.ino = live.ino;
          n.ctime = live.ctime;
        }
      }
      const prev = previous.get(n.path);
      if (prev && prev.size === n.size && prev.mtime === n.mtime && prev.ctime === n.ctime && prev.ino === n.ino && prev.content && prev.content.every((c) => typeof c === 'number' || up.has(c))) {
        n.content = prev.content;
        progress.filesDone++;
        progress.bytesDone += n.size!;
        report();
        return;
      }
      await files.spawn(() => readFile(n));
    };
    let scanned;
    try {
      scanned = await scan(dir, onNode, { sync: !opts.mayHang });
    } catch (err) {
      await files.drain().catch(() => undefined);
      if (isErrno(err, 'ENOENT') && !progress.filesTotal) throw new FerryError('not_found', `backup: ${dir} does not exist`);
      throw err;
    }
    progress.phase = 'files';
    report();
    await files.drain();
    if (opts.fixed && vanished.size > 0) {
      const first = vanished.values().next().value!.path;
      throw new FerryError('unavailable', `backup of ${opts.volume}: ${vanished.size} file(s) of ${opts.fixed} vanished while they were read (${first}${vanished.size > 1 ? ', …' : ''}): it was removed under the backup; no backup was recorded, run it again`);
    }
    for (const n of vanished) scanned.skipped.push(n.path);
    const nodes = scanned.nodes.filter((n) => !vanished.has(n));
    const skipped = new Set(scanned.skipped);
    // hard links whose first name vanished
    const kept = nodes.filter((n) => !(n.type === 'hardlink' && skipped.has(n.target!)));

    // The manifest, chunked so that unchanged stretches deduplicate against earlier backups.
    progress.phase = 'finish';
    report();
    const treeBuf = serializeTree(kept);
    const tree: string[] = [];
    for (const part of repo.treeChunker.split(treeBuf)) {
      const id = repo.codec.id(part).toString('hex');
      tree.push(id);
      if (!up.has(id)) {
        const copy = Buffer.allocUnsafeSlow(part.length);
        copy.set(part);
        await up.store(id, 't', copy, true);
      }
    }
    await up.finish();

    const id = randomBytes(16).toString('hex');
    const snap: SnapshotFile = {
      version: 1,
      id,
      volume: opts.volume,
      node,
      time,
      snapshot: opts.snapshot,
      tags: opts.tags ?? [],
      parent: parentSnap?.id,
      tree,
      stats: { files: scanned.files, dirs: scanned.dirs, bytes: progress.bytesDone, bytesNew: up.bytesNew, bytesAdded: 0, durationMs: 0 },
    };
    snap.stats.durationMs = Date.now() - started;
    snap.stats.bytesAdded = repo.target.bytesWritten - writtenAtStart;
    // a backup whose lock went stale meanwhile may refer to packs a prune elsewhere removed: not recorded
    release.check();
    await repo.writeSnapshot(snap);
    report();
    return repo.info(snap);
  } catch (err) {
    await uploader?.abort();
    throw err;
  } finally {
    await reader.close();
    await release().catch(() => undefined);
  }
}

async function pickParent(repo: BackupRepo, opts: BackupOptions, node: string): Promise<SnapshotFile | undefined> {
  if (opts.parent === false) return undefined;
  if (typeof opts.parent === 'string') return repo.loadSnapshot(opts.parent);
  const same = (await repo.loadSnapshots()).filter((s) => s.volume === opts.volume);
  same.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  const sameNode = same.filter((s) => s.node === node);
  return (sameNode.length ? sameNode : same).at(-1);
}
