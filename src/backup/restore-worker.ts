/**
 * Writes restored files, symlinks, hard links and directories' metadata on a thread of its own, with
 * synchronous calls, in the order the main thread sends them: creating tens of thousands of entries costs
 * mostly kernel time, and threads issuing the calls back to back beat the promise API's thread-pool round
 * trips. Each writer also authenticates, decompresses and checks the chunks it writes, so that this work
 * is spread over the cores. From a target on this host's filesystem (a directory, an NFS mount) each
 * writer also reads the chunks' stored bytes from the packs itself, into a buffer it reuses; from any
 * other target (S3) the main thread reads them and moves them here.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { Codec } from './crypto.js';
import { serveRequests } from '../util/worker-channel.js';
import { join } from 'node:path';
import { fileTargetError } from './file-target.js';
import { packPath, truncatedChunk } from './pack.js';
import { openSync, readSync, writeSync, ftruncateSync, fchownSync, fchmodSync, futimesSync, closeSync, symlinkSync, lchownSync, lutimesSync, linkSync, chownSync, chmodSync, utimesSync } from 'node:fs';

export type WriterMsg =
  | { t: 'open'; id: number; path: string }
  | { t: 'write'; id: number; pos: number; stored: Uint8Array; blob: string; pack: string; raw: number }
  /** a chunk this writer reads from its pack in the target's directory: `length` stored bytes at `offset` */
  | { t: 'read'; id: number; pos: number; blob: string; pack: string; offset: number; length: number; raw: number }
  | { t: 'close'; id: number; size: number; uid: number; gid: number; mode: number; atime: number; mtime: number }
  /** (`id` of the next three only picks the writer) */
  | { t: 'symlink'; id: number; path: string; target: string; uid: number; gid: number; atime: number; mtime: number }
  | { t: 'link'; id: number; existing: string; path: string }
  /** owner, mode and times of an entry that exists (a directory, once everything inside it is made) */
  | { t: 'meta'; id: number; path: string; uid: number; gid: number; mode: number; atime: number; mtime: number };

/** What a writer thread is given: the repository's key (none: not encrypted), and the target's directory and URL when it is on this host. */
export interface WriterSetup {
  key: { enc: Uint8Array; mac: Uint8Array } | null;
  local?: { dir: string; url: string };
}

/**
 * The answer to a batch of messages (a request). A batch that fails is answered by its error (a
 * FerryError keeps its code, e.g. 'corrupt' with the pack), and so is every batch after it.
 */
export interface WriterAck {
  /** Bytes of chunk data (stored) this batch of messages held: the buffers it released, or the bytes it read. */
  bytes: number;
  /** Bytes of file data these messages wrote (the chunks' plain lengths). */
  raw: number;
  ownerDenied?: boolean;
}

const BLOCK = 4096;
const ZERO = Buffer.alloc(BLOCK);

/** Write buf at pos, leaving 4 KiB blocks (aligned to the file offset) of zeros as holes; returns the end written. */
function writeSparse(fd: number, buf: Buffer, pos: number): number {
  let end = 0;
  const isZero = (s: number, e: number) => buf.subarray(s, e).equals(ZERO.subarray(0, e - s));
  const next = (s: number) => Math.min(buf.length, s + BLOCK - ((pos + s) % BLOCK));
  let i = 0;
  while (i < buf.length) {
    while (i < buf.length && isZero(i, next(i))) i = next(i);
    if (i >= buf.length) break;
    let j = next(i);
    while (j < buf.length && !isZero(j, next(j))) j = next(j);
    let off = i;
    while (off < j) off += writeSync(fd, buf, off, j - off, pos + off);
    end = pos + j;
    i = j;
  }
  return end;
}

/** chown, or remember that owners cannot be restored (not root): the restore says so once. */
function owned(chown: () => void): boolean {
  try {
    chown();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    return false;
  }
}

/**
 * Reads chunks' stored bytes from the packs of a target on this host into one buffer, reused (a new
 * buffer per chunk was fresh memory to fault in, page by page). The packs a batch reads stay open until
 * the batch ends (done()), so no descriptor outlives a batch, even one that fails.
 */
class PackReader {
  private buf = Buffer.alloc(0);
  private readonly fds = new Map<string, number>();

  constructor(private readonly local: { dir: string; url: string }) {}

  /** The stored bytes, valid until the next read(). */
  read(m: Extract<WriterMsg, { t: 'read' }>): Buffer {
    const name = packPath(m.pack);
    try {
      let fd = this.fds.get(m.pack);
      if (fd === undefined) {
        fd = openSync(join(this.local.dir, name), 'r');
        this.fds.set(m.pack, fd);
      }
      if (this.buf.length < m.length) this.buf = Buffer.allocUnsafeSlow(Math.max(m.length, Math.min(2 * this.buf.length, 16 << 20)));
      let got = 0;
      while (got < m.length) {
        const n = readSync(fd, this.buf, got, m.length - got, m.offset + got);
        if (n === 0) throw truncatedChunk(m.blob, m.pack);
        got += n;
      }
      return this.buf.subarray(0, m.length);
    } catch (err) {
      throw fileTargetError(this.local.url, err, 'reading', name);
    }
  }

  done(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

if (!isMainThread) {
  const setup = workerData as WriterSetup;
  const k = setup.key;
  const codec = new Codec(k ? { enc: Buffer.from(k.enc), mac: Buffer.from(k.mac) } : null);
  const packs = setup.local ? new PackReader(setup.local) : undefined;
  const fds = new Map<number, { fd: number; end: number }>();
  let failed: unknown;
  serveRequests<WriterMsg[], WriterAck>((batch) => {
    if (failed) throw failed;
    let ownerDenied = false;
    try {
      for (const m of batch) {
        if (m.t === 'open') fds.set(m.id, { fd: openSync(m.path, 'wx', 0o600), end: 0 });
        else if (m.t === 'write' || m.t === 'read') {
          const f = fds.get(m.id)!;
          if (m.t === 'read' && !packs) throw new Error('restore writer: a chunk to read, but no target directory to read it from');
          const stored = m.t === 'write' ? m.stored : packs!.read(m);
          f.end = Math.max(f.end, writeSparse(f.fd, codec.openChunkSync(m.blob, m.pack, m.raw, stored), m.pos));
        } else if (m.t === 'symlink') {
          symlinkSync(m.target, m.path);
          if (!owned(() => lchownSync(m.path, m.uid, m.gid))) ownerDenied = true;
          lutimesSync(m.path, m.atime, m.mtime);
        } else if (m.t === 'link') linkSync(m.existing, m.path);
        else if (m.t === 'meta') {
          if (!owned(() => chownSync(m.path, m.uid, m.gid))) ownerDenied = true;
          chmodSync(m.path, m.mode);
          utimesSync(m.path, m.atime, m.mtime);
        } else {
          const { fd, end } = fds.get(m.id)!;
          fds.delete(m.id);
          try {
            if (end < m.size) ftruncateSync(fd, m.size); // trailing holes
            if (!owned(() => fchownSync(fd, m.uid, m.gid))) ownerDenied = true;
            fchmodSync(fd, m.mode);
            futimesSync(fd, m.atime, m.mtime);
          } finally {
            closeSync(fd);
          }
        }
      }
    } catch (err) {
      failed = err;
      throw err;
    } finally {
      packs?.done();
    }
    let bytes = 0;
    let raw = 0;
    for (const m of batch) {
      if (m.t === 'write') bytes += m.stored.byteLength;
      else if (m.t === 'read') bytes += m.length;
      else continue;
      raw += m.raw;
    }
    return { bytes, raw, ownerDenied };
  });
}
