/**
 * A backup repository on a Target: its config and keys, the codec they give, the index of chunks, and
 * the snapshot files. It stores and reads; it never runs a backup, restore, verify or prune (those use it:
 * backup.ts, restore.ts, maintenance.ts). The layout and the reasoning behind it are in docs/backup-format.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readFile } from 'node:fs/promises';
import { FerryError, errorMessage } from '../util/errors.js';
import { forEachLimit } from '../util/parallel.js';
import type { Backup } from '../wire/types.js';
import { Codec, makeKeyFile, openKeyFile, newMasterKey, DEFAULT_KDF, type KeyFile, type MasterKey } from './crypto.js';
import { Chunker, DATA_CHUNKS, TREE_CHUNKS, type ChunkerParams } from './chunker.js';
import { nameOf, type Target, type TargetOptions } from './target.js';
import { openTarget } from './open-target.js';
import { FileTarget } from './file-target.js';
import { parseTree, type TreeNode } from './tree.js';
import { formatBackupUrl } from './url.js';
import { BlobIndex } from './blob-index.js';
import { PACK_TARGET_SIZE, packPath, truncatedChunk, type BlobLocation } from './pack.js';
import { takeLock } from './lock.js';
import { makeDirs } from '../util/make-dirs.js';

/** Blobs of one pack at most this far apart are read as one range (readBlobs): a request costs more than this many bytes. */
const READ_GAP = 256 * 1024;

/** A backup as the API shows it: its snapshot file's facts and its URL. */
export type BackupInfo = Backup;

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

export class Repository {
  /** Which pack holds each chunk. */
  readonly index: BlobIndex;
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
    this.index = new BlobIndex(target, codec);
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
    if (t instanceof FileTarget) await makeDirs(t.root).catch(() => undefined);
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

  // ---- backups (snapshot files) ---------------------------------------------------------------------

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

  /** Forget a backup. Its data stays until a prune. */
  async remove(id: string): Promise<void> {
    const s = await this.loadSnapshot(id);
    const release = await takeLock(this, false, 'remove');
    try {
      await this.target.remove(`snapshots/${s.id}`);
    } finally {
      await release();
    }
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

  async loadSnapshots(): Promise<SnapshotFile[]> {
    const objs = await this.target.list('snapshots');
    const out: SnapshotFile[] = [];
    await forEachLimit(
      objs,
      8,
      async (o) => {
        try {
          out.push(await this.readSnapshot(nameOf(o.name)));
        } catch (err) {
          if (err instanceof FerryError && err.code === 'not_found') return; // removed meanwhile
          throw err;
        }
      },
      { stopOnError: true },
    );
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
    return parseTree(await this.readBlobs(s.tree));
  }

  /**
   * Read several blobs (a tree's chunks), in the order given, in few requests: blobs of one pack less than
   * READ_GAP apart are fetched as one range (a tree is thousands of small chunks, mostly side by side in a
   * few packs; one request each would be thousands of round trips to an S3 bucket).
   */
  async readBlobs(ids: readonly string[]): Promise<Buffer[]> {
    const locs = ids.map((id) => {
      const loc = this.index.get(id);
      if (!loc) throw new FerryError('corrupt', `chunk ${id} is in no index of ${this.url} (run verify)`);
      return loc;
    });
    const stored = new Map<string, Buffer>();
    const byPack = new Map<string, Array<[string, BlobLocation]>>();
    for (const [i, id] of ids.entries()) {
      const list = byPack.get(locs[i]!.pack) ?? [];
      byPack.set(locs[i]!.pack, list);
      list.push([id, locs[i]!]);
    }
    for (const [pack, blobs] of byPack) {
      blobs.sort((a, b) => a[1].offset - b[1].offset);
      for (let i = 0; i < blobs.length; ) {
        let j = i + 1;
        let end = blobs[i]![1].offset + blobs[i]![1].length;
        while (j < blobs.length && blobs[j]![1].offset - end <= READ_GAP && blobs[j]![1].offset + blobs[j]![1].length - blobs[i]![1].offset <= PACK_TARGET_SIZE) {
          end = Math.max(end, blobs[j]![1].offset + blobs[j]![1].length);
          j++;
        }
        const start = blobs[i]![1].offset;
        const span = await this.target.getRange(packPath(pack), start, end - start);
        for (const [id, loc] of blobs.slice(i, j)) {
          const bytes = span.subarray(loc.offset - start, loc.offset - start + loc.length);
          if (bytes.length !== loc.length) throw truncatedChunk(id, pack);
          stored.set(id, bytes);
        }
        i = j;
      }
    }
    return Promise.all(ids.map((id, i) => this.decodeBlob(id, locs[i]!, stored.get(id)!)));
  }

  // ---- chunks ------------------------------------------------------------------------------------

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
    if (stored.length !== loc.length) throw truncatedChunk(id, loc.pack);
    return { loc, stored };
  }

  async decodeBlob(id: string, loc: BlobLocation, stored: Uint8Array): Promise<Buffer> {
    if (stored.length !== loc.length) throw truncatedChunk(id, loc.pack);
    return this.codec.openChunk(id, loc.pack, loc.raw, stored);
  }
}
