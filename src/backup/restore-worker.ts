/**
 * Writes restored files, symlinks, hard links and directories' metadata on a thread of its own, with
 * synchronous calls, in the order the main thread sends them: creating tens of thousands of entries costs
 * mostly kernel time, and threads issuing the calls back to back beat the promise API's thread-pool round
 * trips. Each writer also authenticates, decompresses and checks the chunks it writes, so that this work
 * is spread over the cores; the main thread only reads the stored bytes from the target.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { Codec } from './crypto.js';
import { serveRequests } from '../util/worker-channel.js';
import { openSync, writeSync, ftruncateSync, fchownSync, fchmodSync, futimesSync, closeSync, symlinkSync, lchownSync, lutimesSync, linkSync, chownSync, chmodSync, utimesSync } from 'node:fs';

export type WriterMsg =
  | { t: 'open'; id: number; path: string }
  | { t: 'write'; id: number; pos: number; stored: Uint8Array; blob: string; pack: string; raw: number }
  | { t: 'close'; id: number; size: number; uid: number; gid: number; mode: number; atime: number; mtime: number }
  /** (`id` of the next three only picks the writer) */
  | { t: 'symlink'; id: number; path: string; target: string; uid: number; gid: number; atime: number; mtime: number }
  | { t: 'link'; id: number; existing: string; path: string }
  /** owner, mode and times of an entry that exists (a directory, once everything inside it is made) */
  | { t: 'meta'; id: number; path: string; uid: number; gid: number; mode: number; atime: number; mtime: number };

/**
 * The answer to a batch of messages (a request). A batch that fails is answered by its error (a
 * FerryError keeps its code, e.g. 'corrupt' with the pack), and so is every batch after it.
 */
export interface WriterAck {
  /** Bytes of written buffers released by this batch of messages. */
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

if (!isMainThread) {
  const k = workerData as { enc: Uint8Array; mac: Uint8Array } | null;
  const codec = new Codec(k ? { enc: Buffer.from(k.enc), mac: Buffer.from(k.mac) } : null);
  const fds = new Map<number, { fd: number; end: number }>();
  let failed: unknown;
  serveRequests<WriterMsg[], WriterAck>((batch) => {
    if (failed) throw failed;
    let ownerDenied = false;
    try {
      for (const m of batch) {
        if (m.t === 'open') fds.set(m.id, { fd: openSync(m.path, 'wx', 0o600), end: 0 });
        else if (m.t === 'write') {
          const f = fds.get(m.id)!;
          f.end = Math.max(f.end, writeSparse(f.fd, codec.openChunkSync(m.blob, m.pack, m.raw, m.stored), m.pos));
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
    }
    let bytes = 0;
    let raw = 0;
    for (const m of batch) {
      if (m.t !== 'write') continue;
      bytes += m.stored.byteLength;
      raw += m.raw;
    }
    return { bytes, raw, ownerDenied };
  });
}
