/** The files every host of a shared pool reads and writes: shared records, heartbeats, attachments, locks, marks, usage. */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Quarantine } from '../util/quarantine.js';
import { isErrno } from '../util/errors.js';
import type { PoolCapacity, VolumeUsage } from '../wire/types.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import { directShareFs } from '../pools/share-fs-direct.js';
import { ListedCache, SETTLE_MS } from './listed-cache.js';
import type { ShareFs } from '../pools/share-fs.js';

/** A volume's record as every host sees it: what a catalog record holds minus this node's mounts. */
export type SharedRecord = Omit<VolumeRecord, 'mounts'>;

/** A node's heartbeat, rewritten every interval. */
export interface NodeBeat {
  node: string;
  pid: number;
  version: string;
  startedAt: string;
  /** When the node last wrote this file (its clock, ISO 8601). */
  lastSeen: string;
  /** How often it writes (ms): a reader can tell a late beat from a dead node. */
  intervalMs: number;
  /** Random per ferryd process: two daemons claiming one node name are told apart (see node-claim.ts). */
  instance?: string;
  /** The writer's host name and data dir, for the message that refuses a second claimant. */
  host?: string;
  dataDir?: string;
  /** Boot id and mount namespace of the writer (with dataDir: one data dir on one running kernel). */
  machine?: string;
  /** Set by a clean stop: the next ferryd with this node name need not wait for the beat to go stale. */
  stoppedAt?: string;
  /** The space of the node's own (not shared) pools, as last sampled (the Hub's per-node view). */
  capacity?: Record<string, PoolCapacity>;
}

/** Which containers of one node use a volume (written by that node only). */
export interface Attachment {
  node: string;
  volume: string;
  /** The volume incarnation (its createdAt): a re-created name does not inherit attachments. */
  createdAt: string;
  access: string;
  mountIds: string[];
  containers: string[];
  since: string;
  updatedAt: string;
}

/**
 * The volumes of this pool that containers on one node's host reference, mounted or not (stopped and
 * created containers too): what Docker would refuse `docker volume rm` for. Written by that node only,
 * on each heartbeat tick, from one `GET /containers/json?all=1`.
 */
export interface NodeReferences {
  node: string;
  updatedAt: string;
  /** `ok`: asked its engine at updatedAt; `none`: the node has no Docker engine; `unreachable`: its engine did not answer (volumes is the last known list). */
  docker: 'ok' | 'none' | 'unreachable';
  reason?: string;
  /** Volume name → containers as "NAME (STATE)". */
  volumes: Record<string, string[]>;
}

/** What one node measured of a shared volume it looks after (see NodeUsage). */
export interface PublishedUsage extends Omit<VolumeUsage, 'trashBytes'> {
  /** The volume incarnation measured. */
  createdAt: string;
  /** When its snapshots were last looked at (readers take the data of the newest walk, the snapshots of the newest look). */
  checkedAt: string;
}

/**
 * The space the shared volumes take, as measured by the node that looks after each (the one that runs its
 * schedules; also a node that just had it mounted walks it once after the Unmount): one node walks a volume,
 * every node reads the figures. Written by that node only, from its background usage pass (volumes/usage.ts).
 */
export interface NodeUsage {
  node: string;
  updatedAt: string;
  /** Volume name → what was measured. */
  volumes: Record<string, PublishedUsage>;
}

/** The holder of a one-host-at-a-time (rwo) volume. */
export interface RwoLock {
  node: string;
  volume: string;
  createdAt: string;
  since: string;
  token: string;
}

/**
 * A change of a shared volume that needs it unmounted everywhere (remove, restore, reset) in progress on one
 * node. Written before that node's last look at the attachments; a Mount on another node looks for it after
 * publishing its attachment, so at least one of the two sees the other and backs out.
 */
export interface ChangeMark {
  node: string;
  /** The writing ferryd's heartbeat instance: a mark left by a ferryd that is gone counts for nothing. */
  instance: string;
  volume: string;
  createdAt: string;
  /** What the node is about to do, as "remove it", "restore it". */
  what: string;
  since: string;
  token: string;
}

/**
 * The state of a shared pool that every host reads and writes, in files inside the pool itself:
 *
 *   ROOT/catalog/NAME.json               volume records (created exclusively with link(2), then immutable)
 *   ROOT/nodes/NODE.json                 heartbeats
 *   ROOT/attachments/NAME/NODE.json      who uses what; each file has one writer, its node
 *   ROOT/locks/NAME.json                 the holder of an rwo volume (created exclusively with link(2))
 *   ROOT/references/NODE.json            volumes that containers on NODE's host reference; one writer, its node
 *   ROOT/changes/NAME.json               a change that needs the volume unmounted everywhere, in progress (link(2))
 *   ROOT/usage/NODE.json                 the space of the volumes NODE measures; one writer, its node
 *
 * Only operations that are atomic on POSIX filesystems and on NFS/GlusterFS are used: link(2) fails if
 * the name exists (exactly one of two racing hosts wins), rename(2) replaces atomically, and every
 * other file has a single writer.
 */
export class SharedStore {
  readonly catalogDir: string;
  private readonly nodesDir: string;
  private readonly attachDir: string;
  private readonly locksDir: string;
  private readonly refsDir: string;
  private readonly changesDir: string;
  private readonly usageDir: string;

  constructor(
    readonly root: string,
    /** Told of heartbeats and attachments that cannot be read (other nodes' files: warned of, never moved). */
    private readonly quarantine?: Quarantine,
    private readonly fs: ShareFs = directShareFs,
  ) {
    this.catalogDir = join(root, 'catalog');
    this.nodesDir = join(root, 'nodes');
    this.attachDir = join(root, 'attachments');
    this.locksDir = join(root, 'locks');
    this.refsDir = join(root, 'references');
    this.changesDir = join(root, 'changes');
    this.usageDir = join(root, 'usage');
  }

  async init(): Promise<void> {
    for (const d of [this.catalogDir, this.nodesDir, this.attachDir, this.locksDir, this.refsDir, this.changesDir, this.usageDir]) await this.fs.mkdir(d);
  }

  // ---- records -------------------------------------------------------------------------------------

  read(name: string): Promise<SharedRecord | undefined> {
    return this.readJson<SharedRecord>(join(this.catalogDir, `${name}.json`));
  }

  async names(): Promise<string[]> {
    return (await this.fs.readdir(this.catalogDir)).filter((e) => e.endsWith('.json') && !e.startsWith('.')).map((e) => e.slice(0, -5));
  }

  /**
   * The record names, or undefined when the catalog directory still has the signature it had at a listing made at
   * least SETTLE_MS after that signature was first seen (no record linked or removed since; see listed-cache.ts),
   * and the last listing is younger than `maxAgeMs` (a full listing now and then, whatever the attributes say).
   */
  async namesIfChanged(maxAgeMs = 60_000): Promise<string[] | undefined> {
    const sig = await this.fs.sig(this.catalogDir);
    const at = Date.now();
    const c = this.catalogLook;
    if (c?.sig === sig && c.settled && at - c.listedAt < maxAgeMs) return undefined;
    const names = await this.names();
    const since = c?.sig === sig ? c.since : at;
    this.catalogLook = { sig, since, settled: at - since >= SETTLE_MS, listedAt: at };
    return names;
  }

  private catalogLook: { sig: string; since: number; settled: boolean; listedAt: number } | undefined;

  /** Publish a new record; false when the name is taken (by a record another host published first). */
  async publish(rec: SharedRecord): Promise<boolean> {
    return this.createExclusive(this.catalogDir, `${rec.name}.json`, rec);
  }

  /** Withdraw a record, only if it is still the same incarnation. */
  async unpublish(name: string, createdAt: string): Promise<void> {
    const cur = await this.read(name);
    if (!cur || cur.createdAt !== createdAt) return;
    await this.removeIfSame(this.catalogDir, `${name}.json`, (v: SharedRecord) => v.createdAt === createdAt);
  }

  // ---- nodes ---------------------------------------------------------------------------------------

  beat(b: NodeBeat): Promise<void> {
    return this.writeJson(join(this.nodesDir, `${b.node}.json`), b);
  }

  /** The heartbeat file of one node (its mtime is the share's server time of the last beat). */
  beatPath(node: string): string {
    return join(this.nodesDir, `${node}.json`);
  }

  /** One node's heartbeat; undefined when there is none or it cannot be read. */
  beatOf(node: string): Promise<NodeBeat | undefined> {
    return this.readJson<NodeBeat>(this.beatPath(node)).catch(() => undefined);
  }

  /**
   * The heartbeats of `nodes` for a decision that takes a node without one for dead (an rwo take-over, a change
   * while a volume is mounted elsewhere): those missing from one listing (`listed`) are read directly, twice
   * more 100 ms apart while absent. A heartbeat replaced (rename over) on another client was seen missing from a
   * listing of a GlusterFS client for a moment (the swarm e2e test's status, 2026-12-06): one look is no proof.
   */
  async beatsFor(nodes: Iterable<string>, listed?: NodeBeat[]): Promise<Map<string, NodeBeat>> {
    const out = new Map((listed ?? (await this.nodes())).map((b) => [b.node, b]));
    for (const node of new Set(nodes)) {
      for (let i = 0; i < 3 && !out.has(node); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 100));
        const b = await this.beatOf(node);
        if (b && typeof b.lastSeen === 'string') out.set(node, b);
      }
    }
    return out;
  }

  /** `[NODE.json, signature]` of the heartbeat files, from one listing of their directory (beat-watch.ts). */
  beatSigs(): Promise<Array<[string, string]>> {
    return this.fs.readdirSigs(this.nodesDir);
  }

  async nodes(): Promise<NodeBeat[]> {
    const out: NodeBeat[] = [];
    for (const e of await this.fs.readdir(this.nodesDir)) {
      if (!e.endsWith('.json') || e.startsWith('.')) continue;
      const b = await this.readOthers<NodeBeat>(join(this.nodesDir, e), (v) => typeof v.node === 'string' && typeof v.lastSeen === 'string', `The heartbeat of node ${e.slice(0, -5)} is taken as missing: that node counts as not alive until it writes a readable one.`);
      if (b) out.push(b);
    }
    return out;
  }

  // ---- attachments ---------------------------------------------------------------------------------

  async attach(a: Attachment): Promise<void> {
    // (the volume's directory made in the same call: one round trip to the share on the Mount path, not two)
    await this.writeJson(join(this.attachDir, a.volume, `${a.node}.json`), a, true);
  }

  async detach(volume: string, node: string): Promise<void> {
    try {
      await this.fs.unlink(join(this.attachDir, volume, `${node}.json`));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }

  /**
   * The attachments of every volume, for listings and schedules: a volume's directory is read again only when the
   * listing of the attachments directory shows it changed (a file written, renamed or removed in it), so the
   * directories of volumes mounted nowhere cost nothing per look. Removals and Mounts read `attachments(volume)`.
   */
  async attachmentsListed(): Promise<Attachment[]> {
    const listing = (await this.fs.readdirSigs(this.attachDir).catch(() => [] as Array<[string, string]>)).filter(([v]) => !v.startsWith('.'));
    return [...(await this.attachCache.refresh(listing, (v) => this.attachments(v))).values()].flat();
  }

  private readonly attachCache = new ListedCache<Attachment[]>();

  async attachments(volume?: string): Promise<Attachment[]> {
    const vols = volume ? [volume] : await this.fs.readdir(this.attachDir).catch(() => [] as string[]);
    const out: Attachment[] = [];
    for (const v of vols) {
      let files: string[];
      try {
        files = await this.fs.readdir(join(this.attachDir, v));
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      for (const f of files) {
        if (!f.endsWith('.json') || f.startsWith('.')) continue;
        const a = await this.readOthers<Attachment>(join(this.attachDir, v, f), (x) => typeof x.node === 'string' && typeof x.createdAt === 'string' && Array.isArray(x.mountIds), `The attachment of volume ${v} by node ${f.slice(0, -5)} is ignored until that node rewrites it (each heartbeat does).`);
        if (a) out.push(a);
      }
    }
    return out;
  }

  // ---- container references ------------------------------------------------------------------------

  publishReferences(r: NodeReferences): Promise<void> {
    return this.writeJson(join(this.refsDir, `${r.node}.json`), r);
  }

  /** Every node's references file (an unreadable one is skipped: its node rewrites it on its next tick). */
  async references(): Promise<NodeReferences[]> {
    const out: NodeReferences[] = [];
    for (const e of await this.fs.readdir(this.refsDir).catch(() => [] as string[])) {
      if (!e.endsWith('.json') || e.startsWith('.')) continue;
      const r = await this.readJson<NodeReferences>(join(this.refsDir, e)).catch(() => undefined);
      if (r && typeof r.volumes === 'object' && r.volumes !== null) out.push(r);
    }
    return out;
  }

  // ---- space used ----------------------------------------------------------------------------------

  publishUsage(u: NodeUsage): Promise<void> {
    return this.writeJson(join(this.usageDir, `${u.node}.json`), u);
  }

  /**
   * Every node's usage file (an unreadable one is skipped: its node rewrites it when a figure changes). A file is
   * read again only when the listing shows it rewritten (another signature): each node rewrites its own only when
   * a figure changed, so idle nodes read none. `except`: a node whose file is not read (this node's own: it knows
   * what it wrote; at 10,000 volumes, 2 MB parsed again after each of its writes).
   */
  async usages(except?: string): Promise<NodeUsage[]> {
    const listing = (await this.fs.readdirSigs(this.usageDir).catch(() => [] as Array<[string, string]>)).filter(([e]) => e.endsWith('.json') && !e.startsWith('.') && e !== `${except}.json`);
    const read = await this.usageCache.refresh(listing, async (e) => {
      const u = await this.readJson<NodeUsage>(join(this.usageDir, e)).catch(() => undefined);
      return u && typeof u.node === 'string' && typeof u.volumes === 'object' && u.volumes !== null ? u : undefined;
    });
    return [...read.values()];
  }

  private readonly usageCache = new ListedCache<NodeUsage>();

  // ---- rwo locks -----------------------------------------------------------------------------------

  readLock(volume: string): Promise<RwoLock | undefined> {
    return this.readJson<RwoLock>(join(this.locksDir, `${volume}.json`));
  }

  /** Take the lock if it is free; false if somebody holds it (read it to see who). */
  tryLock(l: RwoLock): Promise<boolean> {
    return this.createExclusive(this.locksDir, `${l.volume}.json`, l);
  }

  /** Drop a lock, only if it is the one with `token` (never somebody else's). Returns whether it was. */
  breakLock(volume: string, token: string): Promise<boolean> {
    return this.removeIfSame(this.locksDir, `${volume}.json`, (l: RwoLock) => l.token === token, 'keep');
  }

  // ---- changes in progress -------------------------------------------------------------------------

  readChange(volume: string): Promise<ChangeMark | undefined> {
    return this.readJson<ChangeMark>(join(this.changesDir, `${volume}.json`));
  }

  /** Mark a change in progress if no other is; false if one is (read it to see whose). */
  tryChange(c: ChangeMark): Promise<boolean> {
    return this.createExclusive(this.changesDir, `${c.volume}.json`, c);
  }

  /** Drop a change mark, only if it is the one with `token`. Returns whether it was. */
  endChange(volume: string, token: string): Promise<boolean> {
    return this.removeIfSame(this.changesDir, `${volume}.json`, (c: ChangeMark) => c.token === token, 'keep');
  }

  // ---- primitives ----------------------------------------------------------------------------------

  /** A JSON file; undefined when it does not exist. */
  private async readJson<T>(path: string): Promise<T | undefined> {
    try {
      return JSON.parse(await this.fs.readText(path)) as T;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  private writeJson(path: string, value: unknown, makeDir = false): Promise<void> {
    return this.fs.writeAtomic(path, JSON.stringify(value, null, 2) + '\n', makeDir);
  }

  /** A file another node writes: unreadable means absent (with a warning), never a failure of this node. */
  private async readOthers<T extends object>(file: string, valid: (v: Partial<T>) => boolean, assumed: string): Promise<T | undefined> {
    let v: T | undefined;
    try {
      v = await this.readJson<T>(file);
      if (v === undefined) return undefined;
      if (typeof v !== 'object' || v === null || !valid(v)) throw new Error('not a record of the expected shape');
    } catch (err) {
      this.quarantine?.unreadable(file, err, assumed);
      return undefined;
    }
    this.quarantine?.readable(file);
    return v;
  }

  /** Write `value` to a private file, fsync, then link(2) it to `name`: fails (false) if `name` exists. */
  private async createExclusive(dir: string, name: string, value: unknown): Promise<boolean> {
    const tmp = join(dir, `.${name}.new-${process.pid}-${randomBytes(6).toString('hex')}`);
    await this.fs.writeNew(tmp, JSON.stringify(value, null, 2) + '\n');
    try {
      let linkErr: unknown;
      await this.fs.link(tmp, join(dir, name)).catch((err) => (linkErr = err));
      // NFS: a retransmitted LINK whose first reply was lost answers EEXIST although the link was made.
      // The private file's link count tells the truth: 2 means our link exists, whatever link(2) said.
      if (linkErr !== undefined && (!isErrno(linkErr, 'EEXIST') || (await this.fs.nlink(tmp)) !== 2)) {
        if (isErrno(linkErr, 'EEXIST')) return false;
        throw linkErr;
      }
      await this.fs.fsyncDir(dir);
      return true;
    } finally {
      await this.fs.unlink(tmp).catch(() => undefined);
    }
  }

  /**
   * Remove `name` only if `same(content)`: rename it to a private name first (only one host can), check
   * what was taken, and put it back with link(2) if it was not the expected one. `unreadable`: what to do
   * with what cannot be read right after the rename (a client whose cached name led to a file gone since:
   * ESTALE): `keep` puts it back (a lock or a mark: never remove one that may be another node's).
   */
  private async removeIfSame<T>(dir: string, name: string, same: (v: T) => boolean, unreadable: 'keep' | 'remove' = 'remove'): Promise<boolean> {
    const path = join(dir, name);
    const taken = join(dir, `.${name}.gone-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await this.fs.rename(path, taken);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    const v = await this.readJson<T>(taken).catch(() => undefined);
    if (v === undefined ? unreadable === 'keep' : !same(v)) {
      await this.fs.link(taken, path).catch(() => undefined); // a new one may have been made meanwhile: it wins
      await this.fs.unlink(taken).catch(() => undefined);
      return false;
    }
    await this.fs.unlink(taken);
    await this.fs.fsyncDir(dir);
    return true;
  }
}
