/**
 * Where a backup repository lives: a directory (`file:///path`, typically an NFS mount several hosts
 * share) or an S3-compatible bucket (`s3://bucket/prefix`). A target stores named objects
 * ("data/ab/abcd…", "snapshots/…"); every put is all-or-nothing.
 */
import { mkdir, open, readdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  S3Client,
  GetObjectCommand,
  PutObjectCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  HeadObjectCommand,
  HeadBucketCommand,
} from '@aws-sdk/client-s3';
import { readSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.js';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';

export interface ObjectInfo {
  /** Name relative to the repository root, e.g. "data/ab/ab12…". */
  name: string;
  size: number;
}

/** The last part of an object's name ("data/ab/abcd…" → "abcd…"). */
export const nameOf = (objectName: string) => objectName.slice(objectName.lastIndexOf('/') + 1);

export interface Target {
  /** file:///path or s3://bucket/prefix, without credentials or options. */
  readonly url: string;
  /** Bytes successfully written through put() since this target was created. */
  readonly bytesWritten: number;
  /** Whole object; FerryError('not_found') when missing. */
  get(name: string): Promise<Buffer>;
  /** `length` bytes at `offset`; FerryError('not_found') when missing. */
  getRange(name: string, offset: number, length: number): Promise<Buffer>;
  /** Store atomically (readers see the whole object or none); replaces an existing one. */
  put(name: string, data: Uint8Array): Promise<void>;
  /** Objects under a folder ("data", "index", …), recursively. */
  list(folder: string): Promise<ObjectInfo[]>;
  /** Size, or undefined when missing. */
  stat(name: string): Promise<number | undefined>;
  /** Remove; missing is not an error. */
  remove(name: string): Promise<void>;
  /** Fails with a clear FerryError when the target cannot be reached at all. */
  probe(): Promise<void>;
  close(): void;
}

export interface S3Options {
  /** e.g. http://127.0.0.1:9000; default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS itself. */
  endpoint?: string;
  /** default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1. */
  region?: string;
  /** Path-style addressing (http://host/bucket/key), needed by most self-hosted stores. */
  pathStyle?: boolean;
  /** default: the SDK's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, …). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Milliseconds to wait for a TCP connection before the endpoint counts as unreachable (default 5000). */
  connectTimeoutMs?: number;
}

export interface TargetOptions {
  s3?: S3Options;
}

/** A target from its URL (`file:///…` or `s3://bucket/prefix`); query parameters are ignored. */
export function openTarget(url: string, opts: TargetOptions = {}): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FerryError('invalid', `"${url}" is not a backup target URL; expected file:///path or s3://bucket/prefix`);
  }
  if (u.protocol === 'file:') {
    if (u.host && u.host !== 'localhost') throw new FerryError('invalid', `file URL "${url}" names a host; use file:///absolute/path`);
    return new FileTarget(fileURLToPath(new URL(`file://${u.pathname}`)));
  }
  if (u.protocol === 's3:') {
    if (!u.hostname) throw new FerryError('invalid', `"${url}" names no bucket; expected s3://bucket/prefix`);
    const prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
    return new S3Target(u.hostname, prefix, opts.s3 ?? {});
  }
  throw new FerryError('invalid', `unsupported backup target "${url}"; expected file:///path or s3://bucket/prefix`);
}

const SYNC_READ_MAX = 256 * 1024;

/** A pack kept open for ranged reads: closed once evicted and no read uses it. */
interface OpenPack {
  fh: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

const unavailableCodes = new Set(['EIO', 'ESTALE', 'ENOTCONN', 'EHOSTDOWN', 'EHOSTUNREACH', 'ETIMEDOUT']);

export class FileTarget implements Target {
  readonly url: string;
  bytesWritten = 0;
  private readonly madeDirs = new Set<string>();

  constructor(readonly root: string) {
    this.url = pathToFileURL(root).href;
  }

  private fail(err: unknown, doing: string, name: string): never {
    if (err instanceof FerryError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new FerryError('not_found', `${this.url}: ${name} does not exist`, { target: this.url, name });
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') throw new FerryError('no_space', `${this.url} is full (${e.code}) while ${doing} ${name}; free space or prune, then retry`, { target: this.url, name });
    if (e.code && unavailableCodes.has(e.code)) throw new FerryError('unavailable', `${this.url} is unreachable (${e.code}) while ${doing} ${name}`, { target: this.url, name });
    throw new FerryError('internal', `${this.url}: ${doing} ${name} failed: ${errorMessage(err)}`, { target: this.url, name });
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

  async put(name: string, data: Uint8Array): Promise<void> {
    const p = join(this.root, name);
    const dir = dirname(p);
    try {
      if (!this.madeDirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.madeDirs.add(dir);
      }
      await writeFileAtomic(p, data, 0o600);
      this.bytesWritten += data.length;
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

export class S3Target implements Target {
  readonly url: string;
  bytesWritten = 0;
  private readonly client: S3Client;
  private readonly endpoint: string;

  constructor(
    readonly bucket: string,
    readonly prefix: string,
    opts: S3Options,
  ) {
    this.url = `s3://${bucket}${prefix ? '/' + prefix : ''}`;
    const env = process.env;
    const endpoint = opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    const region = opts.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
    this.endpoint = endpoint ?? `https://s3.${region}.amazonaws.com`;
    this.client = new S3Client({
      region,
      endpoint,
      forcePathStyle: opts.pathStyle ?? false,
      credentials: opts.accessKeyId && opts.secretAccessKey ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, sessionToken: opts.sessionToken } : undefined,
      // Fail fast when the endpoint is down instead of retrying for minutes.
      maxAttempts: 3,
      requestHandler: { connectionTimeout: opts.connectTimeoutMs ?? 5000, requestTimeout: 120_000 },
    });
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  private fail(err: unknown, doing: string, name: string): never {
    if (err instanceof FerryError) throw err;
    const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
    const status = e.$metadata?.httpStatusCode;
    if (e.name === 'NoSuchBucket') throw new FerryError('not_found', `bucket "${this.bucket}" does not exist at ${this.endpoint}; create it first`, { target: this.url });
    if (e.name === 'NoSuchKey' || e.name === 'NotFound' || status === 404) throw new FerryError('not_found', `${this.url}: ${name} does not exist`, { target: this.url, name });
    if (status === 507 || e.name === 'QuotaExceeded' || e.name === 'InsufficientStorage') throw new FerryError('no_space', `${this.url} is full (${e.name}) while ${doing} ${name}`, { target: this.url, name });
    if (status === 403 || e.name === 'InvalidAccessKeyId' || e.name === 'SignatureDoesNotMatch' || e.name === 'AccessDenied') {
      throw new FerryError('invalid', `${this.url}: access denied by ${this.endpoint} (${e.name}); check the credentials`, { target: this.url });
    }
    const code = e.code ?? (err as { cause?: { code?: string } }).cause?.code;
    if (status === undefined || (status >= 500 && status !== 501)) {
      const why = code ?? e.name ?? 'no answer';
      throw new FerryError('unavailable', `S3 endpoint ${this.endpoint} is unreachable or failing (${why}: ${errorMessage(err)}) while ${doing} ${name}`, { target: this.url, endpoint: this.endpoint });
    }
    throw new FerryError('internal', `${this.url}: ${doing} ${name} failed: ${e.name ?? ''} ${errorMessage(err)}`, { target: this.url });
  }

  async get(name: string): Promise<Buffer> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      this.fail(err, 'reading', name);
    }
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name), Range: `bytes=${offset}-${offset + length - 1}` }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      this.fail(err, 'reading', name);
    }
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: data, ContentLength: data.length }));
      this.bytesWritten += data.length;
    } catch (err) {
      this.fail(err, 'writing', name);
    }
  }

  async list(folder: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const base = this.prefix ? `${this.prefix}/` : '';
    let token: string | undefined;
    try {
      do {
        const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${base}${folder}/`, ContinuationToken: token }));
        for (const o of res.Contents ?? []) if (o.Key) out.push({ name: o.Key.slice(base.length), size: o.Size ?? 0 });
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      this.fail(err, 'listing', folder);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string): Promise<number | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return res.ContentLength ?? 0;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      this.fail(err, 'reading', name);
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    } catch (err) {
      const e = err as { name?: string };
      if (e.name === 'NoSuchKey') return;
      this.fail(err, 'removing', name);
    }
  }

  async probe(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) throw new FerryError('not_found', `bucket "${this.bucket}" does not exist at ${this.endpoint}; create it first`, { target: this.url });
      this.fail(err, 'reaching', 'the bucket');
    }
  }

  close(): void {
    this.client.destroy();
  }
}
