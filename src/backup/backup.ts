/**
 * One backup: scan the tree, read changed files through the chunker, store the chunks the repository
 * lacks in packs, store the manifest, and write the snapshot file last.
 */
import { openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
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
   * How a file is recognised as unchanged since the parent: `strict` (size, mtime, ctime and inode, as
   * restic) or `mtime-size` (size and mtime in ns only: for trees that are copies, such as snapshots,
   * whose inodes and ctimes change with every copy while the content does not).
   */
  compare?: 'strict' | 'mtime-size';
  /**
   * The directory is on a share that may stop answering (a shared pool): every file is opened and read
   * in a child process (file-reader.ts says why), never in ferryd's.
   */
  mayHang?: boolean;
  onProgress?: (p: BackupProgress) => void;
}

/** What a backup needs of the repository. */
export type BackupRepo = Pick<Repository, 'target' | 'codec' | 'index' | 'chunker' | 'treeChunker' | 'loadSnapshot' | 'loadSnapshots' | 'loadTree' | 'writeSnapshot' | 'info'>;

const ZERO = Buffer.alloc(8 * 1024 * 1024);

export async function runBackup(repo: BackupRepo, dir: string, opts: BackupOptions): Promise<BackupInfo> {
  if (!opts.volume) throw new FerryError('invalid', 'backup: volume is required');
  const started = Date.now();
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

    uploader = new PackUploader(repo, (bytes) => {
      progress.bytesUploaded += bytes;
      report();
    });
    const up = uploader;
    // Packs an interrupted run left behind are reused; name them in this run's index.
    up.adopt(repo.index.recoveredPacks);

    // Files are read several at a time (small ones whole, in one read; large ones through one of two
    // 16 MiB chunker windows), so that file-system latency overlaps with hashing and compression.
    const chunkers = [new StreamChunker(repo.chunker), new StreamChunker(repo.chunker)];
    const waiting: Array<(c: StreamChunker) => void> = [];
    const takeChunker = () => new Promise<StreamChunker>((resolve) => (chunkers.length ? resolve(chunkers.pop()!) : waiting.push(resolve)));
    const giveChunker = (c: StreamChunker) => (waiting.length ? waiting.shift()!(c) : chunkers.push(c));
    const vanished = new Set<ScannedNode>();
    const single = repo.chunker.params.min;

    const addChunk = async (content: Array<string | number>, chunk: Buffer, copy: boolean) => {
      progress.bytesRead += chunk.length;
      progress.bytesDone += chunk.length;
      if (chunk.equals(ZERO.subarray(0, chunk.length))) {
        const last = content[content.length - 1];
        if (typeof last === 'number') content[content.length - 1] = last + chunk.length;
        else content.push(chunk.length);
        return;
      }
      const id = repo.codec.id(chunk).toString('hex');
      content.push(id);
      if (!up.has(id)) {
        let data = chunk;
        if (copy) {
          data = Buffer.allocUnsafeSlow(chunk.length); // an ArrayBuffer of its own: moved, not copied, to an encoder
          chunk.copy(data);
        }
        await up.store(id, 'd', data, true); // a copy, or a small file's own buffer
      }
    };

    /**
     * Small files (one chunk) are read with synchronous calls: from the page cache that is ~10× cheaper
     * than the promise API, whose per-call overhead dominated backups of many small files. Each call
     * blocks the thread for one read of at most `min` bytes; hosts that cannot afford that run the
     * engine in a worker thread. Never on a share that may hang (`mayHang`): one hung read would stop ferryd.
     */
    const readSmall = (n: ScannedNode): Buffer | 'vanished' | undefined => {
      let fd: number;
      try {
        fd = openSync(join(dir, n.path), 'r');
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return 'vanished';
        throw err;
      }
      try {
        // One read of size + 1 bytes tells whether the file is still that small (it fits one chunk).
        const buf = Buffer.allocUnsafeSlow(n.size! + 1);
        let got = 0;
        for (;;) {
          const r = readSync(fd, buf, got, buf.length - got, got);
          if (r === 0) break;
          got += r;
          if (got === buf.length) return undefined; // it grew: read it as a large file
        }
        return buf.subarray(0, got);
      } finally {
        closeSync(fd);
      }
    };

    const readFile = async (n: ScannedNode): Promise<void> => {
      const content: Array<string | number> = [];
      let size = 0;
      const whole = n.size! < single && !opts.mayHang ? readSmall(n) : undefined;
      if (whole === 'vanished') {
        vanished.add(n); // deleted since the scan
        progress.filesDone++;
        return;
      }
      if (whole) {
        size = whole.length;
        if (size > 0) await addChunk(content, whole, false);
      } else {
        let fh: ReadHandle;
        try {
          fh = await reader.open(join(dir, n.path));
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
            await addChunk(content, chunk, true);
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

    // Files are read while the walk goes on (it waits whenever 8 files are being read).
    const files = new Tasks(8);
    const onNode = async (n: ScannedNode) => {
      if (n.type === 'dir') return;
      progress.filesTotal++;
      if (n.type !== 'file') {
        progress.filesDone++;
        return;
      }
      progress.bytesTotal += n.size!;
      const prev = previous.get(n.path);
      if (prev && prev.size === n.size && prev.mtime === n.mtime && (opts.compare === 'mtime-size' || (prev.ctime === n.ctime && prev.ino === n.ino)) && prev.content && prev.content.every((c) => typeof c === 'number' || up.has(c))) {
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
      scanned = await scan(dir, onNode);
    } catch (err) {
      await files.drain().catch(() => undefined);
      if (isErrno(err, 'ENOENT') && !progress.filesTotal) throw new FerryError('not_found', `backup: ${dir} does not exist`);
      throw err;
    }
    progress.phase = 'files';
    report();
    await files.drain();
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
