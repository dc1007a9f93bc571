/** A backup target in a directory (`file:///path`, often an NFS mount several hosts share): atomic puts, ranged reads of open packs. */
import { open, readdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.js';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';
import { byteLength, type ObjectInfo, type Target } from './target.js';
import { makeDirs } from '../util/make-dirs.js';

const SYNC_READ_MAX = 256 * 1024;

/** A pack kept open for ranged reads: closed once evicted and no read uses it. */
interface OpenPack {
  fh: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

const unavailableCodes = new Set(['EIO', 'ESTALE', 'ENOTCONN', 'EHOSTDOWN', 'EHOSTUNREACH', 'ETIMEDOUT']);

/** What went wrong with an object of the file target at `url`, as a coded error (FileTarget's own, and a restore's writers reading its packs). */
export function fileTargetError(url: string, err: unknown, doing: string, name: string): FerryError {
  if (err instanceof FerryError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return new FerryError('not_found', `${url}: ${name} does not exist`, { target: url, name });
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return new FerryError('no_space', `${url} is full (${e.code}) while ${doing} ${name}; free space or prune, then retry`, { target: url, name });
  if (e.code && unavailableCodes.has(e.code)) return new FerryError('unavailable', `${url} is unreachable (${e.code}) while ${doing} ${name}`, { target: url, name });
  return new FerryError('internal', `${url}: ${doing} ${name} failed: ${errorMessage(err)}`, { target: url, name });
}

export class FileTarget implements Target {
  readonly url: string;
  bytesWritten = 0;
  private readonly madeDirs = new Set<string>();

  constructor(readonly root: string) {
    this.url = pathToFileURL(root).href;
  }

  get localDir(): string {
    return this.root;
  }

  private fail(err: unknown, doing: string, name: string): never {
    throw fileTargetError(this.url, err, doing, name);
  }

  async get(name: string): Promise<Buffer> {
    try {
      const fh = await open(join(this.root, name), 'r');
      try {
        return await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (err) {
      this.fail(err, 'reading', name);
    }
  }

  /**
   * Ranged reads keep a few packs open (restores read many chunks of the same packs): objects are
   * immutable, and an open pack that prune deletes meanwhile still reads its old, identical content.
   */
  private readonly handles = new Map<string, OpenPack>();

  private release(h: OpenPack): void {
    h.users--;
    if (h.evicted && h.users === 0) h.fh.then((fh) => fh.close()).catch(() => undefined);
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    let h = this.handles.get(name);
    if (h) this.handles.delete(name); // most recently used last
    else {
      h = { fh: open(join(this.root, name), 'r'), users: 0, evicted: false };
      h.fh.catch(() => undefined);
    }
    this.handles.set(name, h);
    h.users++;
    while (this.handles.size > 32) {
      const [oldest, old] = this.handles.entries().next().value as [string, OpenPack];
      this.handles.delete(oldest);
      old.evicted = true;
      old.users++;
      this.release(old);
    }
    try {
      const fh = await h.fh;
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        // Small ranges (a restore's many small files) are read synchronously: a pread from the page
        // cache costs less than the promise API's round trip through the thread pool.
        const n = length - got <= SYNC_READ_MAX ? readSync(fh.fd, buf, got, length - got, offset + got) : (await fh.read(buf, got, length - got, offset + got)).bytesRead;
        if (n === 0) break;
        got += n;
      }
      return got === length ? buf : buf.subarray(0, got);
    } catch (err) {
      if (this.handles.get(name) === h) {
        this.handles.delete(name);
        h.evicted = true;
      }
      this.fail(err, 'reading', name);
    } finally {
      this.release(h);
    }
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const p = join(this.root, name);
    const dir = dirname(p);
    try {
      if (!this.madeDirs.has(dir)) {
        await makeDirs(dir);
        this.madeDirs.add(dir);
      }
      await writeFileAtomic(p, data, 0o600);
      this.bytesWritten += byteLength(data);
    } catch (err) {
      this.fail(err, 'writing', name);
    }
  }

  async list(folder: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let ents;
      try {
        ents = await readdir(join(this.root, rel), { withFileTypes: true });
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return;
        this.fail(err, 'listing', rel);
      }
      await Promise.all(
        ents.map(async (e) => {
          if (e.name.startsWith('.')) return; // temporary files of writes in progress (or interrupted)
          const r = `${rel}/${e.name}`;
          if (e.isDirectory()) return walk(r);
          if (!e.isFile()) return;
          try {
            out.push({ name: r, size: (await stat(join(this.root, r))).size });
          } catch (err) {
            if (!isErrno(err, 'ENOENT')) this.fail(err, 'listing', r);
          }
        }),
      );
    };
    await walk(folder);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string): Promise<number | undefined> {
    try {
      return (await stat(join(this.root, name))).size;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      this.fail(err, 'reading', name);
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await unlink(join(this.root, name));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) this.fail(err, 'removing', name);
    }
  }

  async probe(): Promise<void> {
    try {
      const st = await stat(this.root);
      if (!st.isDirectory()) throw new FerryError('invalid', `${this.url} is not a directory`);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new FerryError('not_found', `backup target ${this.url} does not exist (is the share mounted?)`, { target: this.url });
      this.fail(err, 'reading', '.');
    }
  }

  /** Remove temporary files that interrupted writes left behind (used by prune). */
  async removeTemporaries(): Promise<number> {
    let n = 0;
    const walk = async (dir: string): Promise<void> => {
      let ents;
      try {
        ents = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.name.startsWith('.') && e.name.includes('.tmp-')) {
          await rm(p, { force: true });
          n++;
        }
      }
    };
    await walk(this.root);
    return n;
  }

  close(): void {
    for (const h of this.handles.values()) {
      h.evicted = true;
      h.users++;
      this.release(h);
    }
    this.handles.clear();
  }
}
