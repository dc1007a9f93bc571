/**
 * A backup repository on a Target: config, keys, packs of chunks, index files, snapshot files and
 * locks. The layout and the reasoning behind it are in docs/backup-format.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, readFile } from 'node:fs/promises';
import { FerryError, errorMessage } from '../util/errors.js';
import { Codec, makeKeyFile, openKeyFile, newMasterKey, DEFAULT_KDF, type KeyFile, type MasterKey } from './crypto.js';
import { Chunker, DATA_CHUNKS, TREE_CHUNKS, type ChunkerParams } from './chunker.js';
import { openTarget, FileTarget, type Target, type TargetOptions } from './target.js';
import { EncoderPool } from './encoder-pool.js';
import { parseTree, type TreeNode } from './tree.js';
import { formatBackupUrl } from './url.js';
import { runBackup, type BackupOptions, type BackupInfo } from './backup.js';
import { runRestore, type RestoreOptions, type RestoreResult } from './restore.js';
import { runVerify, runPrune, type VerifyOptions, type VerifyResult, type PruneResult } from './maintenance.js';

export const PACK_HEADER = Buffer.from('FERRYPK1');
export const PACK_FOOTER = Buffer.from('FERRYEND');
/** Packs are closed once they hold this much. */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;
const INDEX_EVERY_PACKS = 8;
/** Closed packs that may wait for the target (two upload at a time): the read stays at most this far ahead. */
const MAX_QUEUED_PACKS = 4;
const LOCK_REFRESH_MS = 5 * 60_000;
const LOCK_STALE_MS = 30 * 60_000;

export type BlobType = 'd' | 't'; // data chunk, tree chunk

/** [id, type, offset, length, raw length], as stored in index files and pack trailers. */
export type BlobRecord = [id: string, type: BlobType, offset: number, length: number, raw: number];

export interface BlobLocation {
  pack: string;
  type: BlobType;
  offset: number;
  length: number;
  raw: number;
}

export interface PackRecord {
  id: string;
  size: number;
  blobs: BlobRecord[];
}

export interface RepoConfig {
  version: 1;
  id: string;
  created: string;
  encryption: 'aes-256-gcm' | 'none';
  chunker: ChunkerParams;
  treeChunker: ChunkerParams;
}

/** What a snapshot file (snapshots/ID) holds. */
export interface SnapshotFile {
  version: 1;
  id: string;
  volume: string;
  node: string;
  time: string;
  /** The Ferry snapshot of the volume this backup was read from, if any. */
  snapshot?: string;
  tags: string[];
  parent?: string;
  /** The manifest: tree chunk ids, in order. */
  tree: string[];
  stats: { files: number; dirs: number; bytes: number; bytesNew: number; bytesAdded: number; durationMs: number };
}

export interface SecretOptions {
  password?: string;
  /** A file whose whole content is the secret. */
  keyFile?: string;
}

export interface InitOptions extends SecretOptions, TargetOptions {
  /** 'none' makes an unencrypted repository; it must be asked for explicitly. */
  encryption?: 'aes-256-gcm' | 'none';
  /** scrypt cost (tests use a cheaper one); default N=2^16, r=8, p=1. */
  kdf?: { N: number; r: number; p: number };
}

export type OpenOptions = SecretOptions & TargetOptions;

export function packPath(id: string): string {
  return `data/${id.slice(0, 2)}/${id}`;
}

const nameOf = (objectName: string) => objectName.slice(objectName.lastIndexOf('/') + 1);

async function secretOf(opts: SecretOptions, url: string): Promise<Buffer | undefined> {
  if (opts.password !== undefined && opts.keyFile !== undefined) throw new FerryError('invalid', 'give a password or a key file, not both');
  if (opts.password !== undefined) {
    if (opts.password === '') throw new FerryError('invalid', 'the password is empty');
    return Buffer.from(opts.password, 'utf8');
  }
  if (opts.keyFile !== undefined) {
    try {
      const b = await readFile(opts.keyFile);
      if (b.length === 0) throw new FerryError('invalid', `key file ${opts.keyFile} is empty`);
      return b;
    } catch (err) {
      if (err instanceof FerryError) throw err;
      throw new FerryError('invalid', `cannot read key file ${opts.keyFile} for ${url}: ${errorMessage(err)}`);
    }
  }
  return undefined;
}

/** Runs async jobs with at most `limit` at a time; the first failure is re-thrown by spawn() and drain(). */
export class Tasks {
  private readonly running = new Set<Promise<void>>();
  private error: unknown;
  private failed = false;
  constructor(private readonly limit: number) {}

  async spawn(fn: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    if (this.failed) throw this.error;
    const p: Promise<void> = fn()
      .catch((err) => {
        if (!this.failed) {
          this.failed = true;
          this.error = err;
        }
      })
      .then(() => {
        this.running.delete(p);
      });
    this.running.add(p);
  }

  /** Wait until one running job ends (or none is running). */
  async waitOne(): Promise<void> {
    if (this.running.size) await Promise.race(this.running);
  }

  async drain(): Promise<void> {
    while (this.running.size) await Promise.race(this.running);
    if (this.failed) throw this.error;
  }
}

export class Repository {
  /** blob id (hex) → where it is. */
  readonly index = new Map<string, BlobLocation>();
  /** Packs present in the target (from the last listing), with their sizes. */
  packs = new Map<string, number>();
  /** Packs named by an index file. */
  readonly indexedPacks = new Map<string, PackRecord>();
  /** Index files read. */
  indexFiles: string[] = [];
  /** Complete packs that no index names yet (an interrupted backup, or one in progress elsewhere). */
  recoveredPacks: PackRecord[] = [];
  /** Packs an index names that are not in the target. */
  missingPacks: string[] = [];
  /** Packs whose trailer could not be read. */
  unreadablePacks: Array<{ pack: string; error: string }> = [];
  private indexLoaded = false;
  readonly chunker: Chunker;
  readonly treeChunker: Chunker;

  private constructor(
    readonly target: Target,
    readonly config: RepoConfig,
    readonly codec: Codec,
  ) {
    const seed = codec.chunkerSeed();
    this.chunker = new Chunker(config.chunker, seed);
    this.treeChunker = new Chunker(config.treeChunker, seed);
  }

  get url(): string {
    return this.target.url;
  }

  get encrypted(): boolean {
    return this.codec.encrypted;
  }

  /** Create a repository at an empty target. */
  static async init(target: Target | string, opts: InitOptions): Promise<Repository> {
    const t = typeof target === 'string' ? openTarget(target, opts) : target;
    const encryption = opts.encryption ?? 'aes-256-gcm';
    const secret = await secretOf(opts, t.url);
    if (encryption === 'aes-256-gcm' && !secret) throw new FerryError('invalid', `${t.url}: an encrypted repository needs a password or a key file (or ask for encryption: 'none')`);
    if (encryption === 'none' && secret) throw new FerryError('invalid', `${t.url}: encryption 'none' takes no password or key file`);
    if (t instanceof FileTarget) await mkdir(t.root, { recursive: true }).catch(() => undefined);
    await t.probe();
    if ((await t.stat('config')) !== undefined) throw new FerryError('exists', `${t.url} is already a Ferry backup repository`);
    let key: MasterKey | null = null;
    if (encryption === 'aes-256-gcm') {
      key = newMasterKey();
      const kf = await makeKeyFile(key, secret!, hostname(), opts.kdf ?? DEFAULT_KDF);
      const body = Buffer.from(JSON.stringify(kf, null, 2) + '\n');
      await t.put(`keys/${createHash('sha256').update(body).digest('hex')}`, body);
    }
    const config: RepoConfig = { version: 1, id: randomBytes(16).toString('hex'), created: new Date().toISOString(), encryption, chunker: DATA_CHUNKS, treeChunker: TREE_CHUNKS };
    // The config is written last: a target with a config is a complete repository.
    await t.put('config', Buffer.from(JSON.stringify(config, null, 2) + '\n'));
    return new Repository(t, config, new Codec(key));
  }

  /** Open an existing repository; FerryError 'bad_password' when the password or key file does not fit. */
  static async open(target: Target | string, opts: OpenOptions = {}): Promise<Repository> {
    const t = typeof target === 'string' ? openTarget(target, opts) : target;
    await t.probe();
    let raw: Buffer;
    try {
      raw = await t.get('config');
    } catch (err) {
      if (err instanceof FerryError && err.code === 'not_found') {
        throw new FerryError('not_found', `${t.url} is not a Ferry backup repository (it has no config); initialise it first with init (ferry backup init)`, { target: t.url });
      }
      throw err;
    }
    let config: RepoConfig;
    try {
      config = JSON.parse(raw.toString('utf8')) as RepoConfig;
    } catch {
      throw new FerryError('corrupt', `${t.url}: the repository's config is not valid JSON`);
    }
    if (config.version !== 1) throw new FerryError('invalid', `${t.url}: repository format version ${config.version} is not supported by this Ferry`);
    if (config.encryption === 'none') return new Repository(t, config, new Codec(null));
    const secret = await secretOf(opts, t.url);
    if (!secret) throw new FerryError('bad_password', `${t.url} is encrypted: give its password or key file`, { target: t.url });
    const keys = await t.list('keys');
    if (keys.length === 0) throw new FerryError('corrupt', `${t.url}: the repository has no keys`);
    for (const k of keys) {
      let kf: KeyFile;
      try {
        kf = JSON.parse((await t.get(k.name)).toString('utf8')) as KeyFile;
      } catch {
        continue;
      }
      const key = await openKeyFile(kf, secret);
      if (key) return new Repository(t, config, new Codec(key));
    }
    throw new FerryError('bad_password', `wrong password or key file for ${t.url}`, { target: t.url });
  }

  close(): void {
    this.target.close();
  }

  // ---- the public operations -------------------------------------------------------------------

  /** Back up a directory tree. See BackupOptions. */
  backup(dir: string, opts: BackupOptions): Promise<BackupInfo> {
    return runBackup(this, dir, opts);
  }

  /** Backups, oldest first, optionally of one volume. */
  async list(filter: { volume?: string } = {}): Promise<BackupInfo[]> {
    const snaps = await this.loadSnapshots();
    return snaps
      .filter((s) => filter.volume === undefined || s.volume === filter.volume)
      .map((s) => this.info(s))
      .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  /** One backup with its manifest summary; `id` may be a unique prefix. */
  async inspect(id: string): Promise<BackupInfo & { tree: { entries: number; chunks: number } }> {
    const s = await this.loadSnapshot(id);
    return { ...this.info(s), tree: { entries: s.stats.files + s.stats.dirs, chunks: s.tree.length } };
  }

  /** Restore a backup into targetDir (created if missing; must be empty). */
  restore(id: string, targetDir: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
    return runRestore(this, id, targetDir, opts);
  }

  /** Forget a backup. Its data stays until prune(). */
  async remove(id: string): Promise<void> {
    const s = await this.loadSnapshot(id);
    const release = await this.lock(false, 'remove');
    try {
      await this.target.remove(`snapshots/${s.id}`);
    } finally {
      await release();
    }
  }

  /** Remove packs no backup references (takes the exclusive lock). */
  prune(): Promise<PruneResult> {
    return runPrune(this);
  }

  /** Check the repository; with readData, read and authenticate every chunk. */
  verify(opts: VerifyOptions = {}): Promise<VerifyResult> {
    return runVerify(this, opts);
  }

  info(s: SnapshotFile): BackupInfo {
    return {
      id: s.id,
      url: formatBackupUrl(this.url, s.id, s.volume),
      volume: s.volume,
      node: s.node,
      time: s.time,
      snapshot: s.snapshot,
      tags: s.tags,
      parent: s.parent,
      ...s.stats,
    };
  }

  // ---- snapshots ---------------------------------------------------------------------------------

  async loadSnapshots(): Promise<SnapshotFile[]> {
    const objs = await this.target.list('snapshots');
    const out: SnapshotFile[] = [];
    await parallel(objs, 8, async (o) => {
      try {
        out.push(await this.readSnapshot(nameOf(o.name)));
      } catch (err) {
        if (err instanceof FerryError && err.code === 'not_found') return; // removed meanwhile
        throw err;
      }
    });
    return out;
  }

  async readSnapshot(id: string): Promise<SnapshotFile> {
    const buf = await this.target.get(`snapshots/${id}`);
    return this.codec.decodeJson<SnapshotFile>(buf, Buffer.from(`ferry snapshot ${id}`), `snapshot ${id}`);
  }

  /** A snapshot by id or unique id prefix. */
  async loadSnapshot(id: string): Promise<SnapshotFile> {
    if (!/^[0-9a-f]{1,64}$/.test(id)) throw new FerryError('invalid', `"${id}" is not a backup id`);
    if (id.length === 32) {
      try {
        return await this.readSnapshot(id);
      } catch (err) {
        if (!(err instanceof FerryError && err.code === 'not_found')) throw err;
        throw new FerryError('not_found', `no backup ${id} in ${this.url}`);
      }
    }
    const names = (await this.target.list('snapshots')).map((o) => nameOf(o.name)).filter((n) => n.startsWith(id));
    if (names.length === 0) throw new FerryError('not_found', `no backup ${id} in ${this.url}`);
    if (names.length > 1) throw new FerryError('invalid', `backup id prefix ${id} is ambiguous (${names.length} backups)`);
    return this.readSnapshot(names[0]!);
  }

  async writeSnapshot(s: SnapshotFile): Promise<number> {
    const body = await this.codec.encodeJson(s, Buffer.from(`ferry snapshot ${s.id}`));
    await this.target.put(`snapshots/${s.id}`, body);
    return body.length;
  }

  async loadTree(s: SnapshotFile): Promise<TreeNode[]> {
    const parts: Buffer[] = [];
    for (const id of s.tree) parts.push(await this.readBlob(id));
    return parseTree(Buffer.concat(parts));
  }

  // ---- blobs and index ---------------------------------------------------------------------------

  /** Read every index file, list the packs, and recover packs no index names (from their trailers). */
  async loadIndex(force = false): Promise<void> {
    if (this.indexLoaded && !force) return;
    this.index.clear();
    this.indexedPacks.clear();
    this.recoveredPacks = [];
    this.missingPacks = [];
    this.unreadablePacks = [];
    const [indexObjs, packObjs] = await Promise.all([this.target.list('index'), this.target.list('data')]);
    this.packs = new Map(packObjs.map((o) => [nameOf(o.name), o.size]));
    this.indexFiles = [];
    await parallel(indexObjs, 8, async (o) => {
      const id = nameOf(o.name);
      let doc: { packs: PackRecord[] };
      try {
        doc = await this.codec.decodeJson<{ packs: PackRecord[] }>(await this.target.get(o.name), Buffer.from('ferry index'), `index ${id}`);
      } catch (err) {
        if (err instanceof FerryError && err.code === 'not_found') return;
        throw err;
      }
      this.indexFiles.push(id);
      for (const p of doc.packs) this.indexedPacks.set(p.id, p);
    });
    for (const p of this.indexedPacks.values()) {
      if (!this.packs.has(p.id)) {
        this.missingPacks.push(p.id);
        continue;
      }
      this.addPackToIndex(p);
    }
    const unindexed = [...this.packs.keys()].filter((id) => !this.indexedPacks.has(id));
    await parallel(unindexed, 4, async (id) => {
      try {
        const rec = await this.readPackTrailer(id, this.packs.get(id)!);
        this.recoveredPacks.push(rec);
        this.addPackToIndex(rec);
      } catch (err) {
        this.unreadablePacks.push({ pack: id, error: errorMessage(err) });
      }
    });
    this.indexLoaded = true;
  }

  addPackToIndex(p: PackRecord): void {
    for (const [id, type, offset, length, raw] of p.blobs) {
      if (!this.index.has(id)) this.index.set(id, { pack: p.id, type, offset, length, raw });
    }
  }

  async readPackTrailer(id: string, size: number): Promise<PackRecord> {
    const what = `pack ${id}`;
    if (size < PACK_HEADER.length + 12) throw new FerryError('corrupt', `${what} is truncated (${size} bytes)`);
    const tail = await this.target.getRange(packPath(id), size - 12, 12);
    if (!tail.subarray(4).equals(PACK_FOOTER)) throw new FerryError('corrupt', `${what} has no trailer (truncated or damaged)`);
    const len = tail.readUInt32LE(0);
    if (len > size - 12 - PACK_HEADER.length) throw new FerryError('corrupt', `${what}: bad trailer length`);
    const body = await this.target.getRange(packPath(id), size - 12 - len, len);
    const blobs = await this.codec.decodeJson<BlobRecord[]>(body, Buffer.from('ferry pack trailer'), what);
    return { id, size, blobs };
  }

  async writeIndex(packs: PackRecord[]): Promise<string> {
    const body = await this.codec.encodeJson({ version: 1, packs }, Buffer.from('ferry index'));
    const id = createHash('sha256').update(body).digest('hex');
    await this.target.put(`index/${id}`, body);
    for (const p of packs) this.indexedPacks.set(p.id, p);
    this.indexFiles.push(id);
    return id;
  }

  /** Read, authenticate and decompress one blob; checks its id. */
  async readBlob(id: string): Promise<Buffer> {
    const { loc, stored } = await this.fetchBlob(id);
    return this.decodeBlob(id, loc, stored);
  }

  /** A blob's stored (encoded) bytes, not yet checked. */
  async fetchBlob(id: string): Promise<{ loc: BlobLocation; stored: Buffer }> {
    const loc = this.index.get(id);
    if (!loc) throw new FerryError('corrupt', `chunk ${id} is in no index of ${this.url} (run verify)`);
    const stored = await this.target.getRange(packPath(loc.pack), loc.offset, loc.length);
    if (stored.length !== loc.length) throw new FerryError('corrupt', `chunk ${id.slice(0, 16)}… in pack ${loc.pack} is truncated`, { pack: loc.pack, blob: id });
    return { loc, stored };
  }

  async decodeBlob(id: string, loc: BlobLocation, stored: Uint8Array): Promise<Buffer> {
    const idBuf = Buffer.from(id, 'hex');
    const what = `chunk ${id.slice(0, 16)}… in pack ${loc.pack}`;
    if (stored.length !== loc.length) throw new FerryError('corrupt', `${what} is truncated`, { pack: loc.pack });
    let plain: Buffer;
    try {
      plain = await this.codec.decode(stored, this.codec.encrypted ? idBuf : undefined, what);
    } catch (err) {
      if (err instanceof FerryError) throw new FerryError('corrupt', err.message, { pack: loc.pack, blob: id });
      throw err;
    }
    if (plain.length !== loc.raw || !this.codec.id(plain).equals(idBuf)) throw new FerryError('corrupt', `${what} does not match its id`, { pack: loc.pack, blob: id });
    return plain;
  }

  // ---- locks -------------------------------------------------------------------------------------

  /**
   * Take a lock: shared (backup, restore, remove) or exclusive (prune). Writes locks/ID first, then
   * looks at the others, and backs off when one conflicts; stale locks (not refreshed for 30 minutes,
   * or of a dead process on this host) are ignored. Returns the release function, with `check()`: it
   * throws once the lock has not been refreshed for so long that another host may take it as stale (and a
   * prune there may remove what this operation relies on); a backup checks before it records itself.
   */
  async lock(exclusive: boolean, op: string, timing: { refreshMs?: number; staleMs?: number } = {}): Promise<RepoLock> {
    const refreshMs = timing.refreshMs ?? LOCK_REFRESH_MS;
    const staleMs = timing.staleMs ?? LOCK_STALE_MS;
    const id = randomBytes(16).toString('hex');
    const name = `locks/${id}`;
    const host = hostname();
    const write = async () => {
      const body = await this.codec.encodeJson({ host, pid: process.pid, time: new Date().toISOString(), exclusive, op } satisfies LockFile, Buffer.from('ferry lock'));
      await this.target.put(name, body);
    };
    await write();
    try {
      for (const o of await this.target.list('locks')) {
        if (nameOf(o.name) === id) continue;
        const other = await this.readLock(nameOf(o.name));
        if (!other || isStale(other)) continue;
        if (exclusive || other.exclusive) {
          throw new FerryError('in_use', `${this.url} is locked${other.exclusive ? ' exclusively' : ''} by ${other.op} on ${other.host} (pid ${other.pid}) since ${other.time}; retry later`, { lock: other });
        }
      }
    } catch (err) {
      await this.target.remove(name).catch(() => undefined);
      throw err;
    }
    let refreshedAt = Date.now();
    let lastError: string | undefined;
    const timer = setInterval(
      () =>
        void write().then(
          () => ((refreshedAt = Date.now()), (lastError = undefined)),
          (err: unknown) => (lastError = errorMessage(err)),
        ),
      refreshMs,
    );
    timer.unref();
    const release = async () => {
      clearInterval(timer);
      await this.target.remove(name);
    };
    const check = () => {
      // one refresh interval of margin: the lock must still look fresh to others when the caller writes
      if (Date.now() - refreshedAt <= staleMs - refreshMs) return;
      throw new FerryError(
        'unavailable',
        `lost the lock on ${this.url}: it could not be refreshed since ${new Date(refreshedAt).toISOString()}${lastError ? ` (${lastError})` : ''}, so a prune elsewhere may have removed data this ${op} relies on; nothing was recorded: run it again`,
      );
    };
    return Object.assign(release, { check });
  }

  async readLock(id: string): Promise<LockFile | undefined> {
    try {
      return await this.codec.decodeJson<LockFile>(await this.target.get(`locks/${id}`), Buffer.from('ferry lock'), `lock ${id}`);
    } catch (err) {
      if (err instanceof FerryError && (err.code === 'not_found' || err.code === 'corrupt')) return undefined;
      throw err;
    }
  }

  async removeStaleLocks(): Promise<number> {
    let n = 0;
    for (const o of await this.target.list('locks')) {
      const l = await this.readLock(nameOf(o.name));
      if (l && isStale(l)) {
        await this.target.remove(o.name);
        n++;
      }
    }
    return n;
  }
}

/** A held lock: call it to release; `check()` throws when it can no longer be trusted to be held. */
export type RepoLock = (() => Promise<void>) & { check(): void };

export interface LockFile {
  host: string;
  pid: number;
  time: string;
  exclusive: boolean;
  op: string;
}

function isStale(l: LockFile): boolean {
  if (Date.now() - Date.parse(l.time) > LOCK_STALE_MS) return true;
  if (l.host === hostname() && l.pid !== process.pid) {
    try {
      process.kill(l.pid, 0);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return false;
}

export async function parallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Collects encoded chunks into packs and uploads them (two at a time); writes an index file every
 * few packs and at the end, so an interrupted backup leaves indexed packs the next run reuses.
 */
export class PackUploader {
  /** Ids stored in this run but not yet uploaded. */
  readonly pending = new Set<string>();
  private parts: Buffer[] = [PACK_HEADER];
  private size = PACK_HEADER.length;
  private blobs: BlobRecord[] = [];
  private readonly encodes = new Tasks(64);
  private readonly pool: EncoderPool;
  private readonly uploads = new Tasks(2);
  private unindexed: PackRecord[] = [];
  private encodingBytes = 0;
  /** Packs closed and not uploaded yet, and who waits for one of them to go. */
  private queuedPacks = 0;
  private readonly packGone: Array<() => void> = [];
  bytesNew = 0;

  constructor(
    private readonly repo: Repository,
    private readonly onUploaded: (bytes: number) => void = () => undefined,
  ) {
    this.pool = new EncoderPool(repo.codec.key);
  }

  has(id: string): boolean {
    return this.repo.index.has(id) || this.pending.has(id);
  }

  /**
   * Queue a chunk; `data` must not change afterwards. With `owned`, its whole ArrayBuffer is handed
   * over (moved to an encoder thread; the caller's view becomes empty).
   */
  async store(id: string, type: BlobType, data: Buffer, owned = false): Promise<void> {
    const raw = data.length;
    this.pending.add(id);
    this.bytesNew += raw;
    // Bound the memory of chunks waiting for an encoder (64 jobs, and 64 MiB).
    while (this.encodingBytes > 64 * 1024 * 1024) await this.encodes.waitOne();
    // ... and of packs waiting for the target: without this bound the read ran up to a GiB ahead of the
    // upload (all of it in memory), and the progress sat at 100 % read while the upload went on
    while (this.queuedPacks >= MAX_QUEUED_PACKS) await new Promise<void>((r) => this.packGone.push(r));
    this.encodingBytes += raw;
    await this.encodes.spawn(async () => {
      let enc: Buffer;
      try {
        enc = await this.pool.encode(data, this.repo.codec.encrypted ? Buffer.from(id, 'hex') : undefined, owned);
      } finally {
        this.encodingBytes -= raw;
      }
      this.blobs.push([id, type, this.size, enc.length, raw]);
      this.parts.push(enc);
      this.size += enc.length;
      if (this.size >= PACK_TARGET_SIZE) await this.closePack();
    });
  }

  /** Also name these (recovered) packs in this run's index files. */
  adopt(packs: PackRecord[]): void {
    this.unindexed.push(...packs);
  }

  private async closePack(): Promise<void> {
    if (this.blobs.length === 0) return;
    const parts = this.parts;
    const blobs = this.blobs;
    this.parts = [PACK_HEADER];
    this.size = PACK_HEADER.length;
    this.blobs = [];
    this.queuedPacks++;
    let handedOver = false;
    try {
      const trailer = await this.repo.codec.encodeJson(blobs, Buffer.from('ferry pack trailer'));
      const len = Buffer.alloc(4);
      len.writeUInt32LE(trailer.length);
      const pack = Buffer.concat([...parts, trailer, len, PACK_FOOTER]);
      const id = createHash('sha256').update(pack).digest('hex');
      await this.uploads.spawn(async () => {
        try {
          await this.repo.target.put(packPath(id), pack);
          const rec: PackRecord = { id, size: pack.length, blobs };
          this.repo.packs.set(id, pack.length);
          this.repo.addPackToIndex(rec);
          for (const b of blobs) this.pending.delete(b[0]);
          this.onUploaded(pack.length);
          this.unindexed.push(rec);
          if (this.unindexed.length >= INDEX_EVERY_PACKS) await this.flushIndex();
        } finally {
          this.packDone();
        }
      });
      handedOver = true;
    } finally {
      if (!handedOver) this.packDone();
    }
  }

  /** A queued pack is uploaded (or failed): let one waiting store() go on. */
  private packDone(): void {
    this.queuedPacks--;
    for (const go of this.packGone.splice(0)) go();
  }

  private async flushIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    await this.repo.writeIndex(packs);
  }

  /** Upload what is left and write the last index file. */
  async finish(): Promise<void> {
    try {
      await this.encodes.drain();
      await this.closePack();
      await this.uploads.drain();
      await this.flushIndex();
    } finally {
      await this.pool.close();
    }
  }

  /** Wait for running work after a failure (so nothing writes after we return). */
  async abort(): Promise<void> {
    await this.encodes.drain().catch(() => undefined);
    await this.uploads.drain().catch(() => undefined);
    await this.pool.close();
  }
}
