/** Where a backup repository lives, as the engine sees it: named objects ("data/ab/abcd…", "snapshots/…"), every put all-or-nothing. Implementations: file-target.ts, s3-target.ts, memory-target.ts. */

export interface ObjectInfo {
  /** Name relative to the repository root, e.g. "data/ab/ab12…". */
  name: string;
  size: number;
}

/** The last part of an object's name ("data/ab/abcd…" → "abcd…"). */
export const nameOf = (objectName: string) => objectName.slice(objectName.lastIndexOf('/') + 1);

/** put()'s data as one buffer (for targets that need it whole), and its length. */
export const joined = (data: Uint8Array | readonly Uint8Array[]): Uint8Array => (data instanceof Uint8Array ? data : Buffer.concat(data));
export const byteLength = (data: Uint8Array | readonly Uint8Array[]): number => (data instanceof Uint8Array ? data.length : data.reduce((n, b) => n + b.length, 0));

export interface Target {
  /** file:///path or s3://bucket/prefix, without credentials or options. */
  readonly url: string;
  /** Bytes successfully written through put() since this target was created. */
  readonly bytesWritten: number;
  /**
   * The directory holding the objects, when the target is one on this host's filesystem: a restore's
   * writer threads then read the packs there themselves, and chunks never cross threads.
   */
  readonly localDir?: string;
  /** Whole object; FerryError('not_found') when missing. */
  get(name: string): Promise<Buffer>;
  /**
   * `length` bytes at `offset`; FerryError('not_found') when missing. The buffer is the caller's: a restore
   * moves it to a writer thread (detaching it), so a target must never hand out one it keeps (a cache).
   */
  getRange(name: string, offset: number, length: number): Promise<Buffer>;
  /**
   * Store atomically (readers see the whole object or none); replaces an existing one. `data` may come
   * in parts, stored one after the other (a pack's chunks: joining them first cost a copy of every pack).
   */
  put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>;
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
  /** Milliseconds a request may go without a byte from the endpoint before it fails (default 20000): one that hangs. */
  idleTimeoutMs?: number;
}

export interface TargetOptions {
  s3?: S3Options;
}
