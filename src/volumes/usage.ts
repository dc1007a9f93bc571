// The space each volume takes (data, snapshots, trash), measured in the background and cached: no request walks a tree.
import { lstat, readdir, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { VolumeInfo, VolumeService } from './service.js';
import type { TrashUsage, VolumeUsage } from './usage-types.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import type { PublishedUsage } from '../cluster/shared-store.js';
import { volumeDirs } from '../pools/layout.js';
import { snapshotSpace, type SnapshotSpace, type SpaceCache } from '../pools/trees/space.js';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import { Periodic } from '../util/periodic.js';
import { breather } from '../util/breather.js';
import { SharedLooks, SHARED_SPREAD } from './usage-turns.js';
import { UsageExchanger, UsageKeys, type UsageExchange } from './usage-exchange.js';
import { errorMessage, isErrno } from '../util/errors.js';
import { TrashSizes } from './usage-trash.js';

export type { VolumeUsage, TrashUsage } from './usage-types.js';
export type { UsageExchange } from './usage-exchange.js';

interface DataEntry {
  bytes: number;
  at: string;
  /** The data directory's inode when walked: a restore swaps the directory, so another inode means walk again. */
  ino: number;
  /** Mounted when walked: after the unmount, walk once more (the containers' last writes). */
  mounted: boolean;
}

interface Saved {
  v: 1;
  data: Record<string, DataEntry>;
  trash: Record<string, number>;
  /** Volumes to walk again once unmounted (see `touched`): kept across a restart of ferryd. */
  touched?: string[];
}

export interface UsageOptions {
  /** Share the measuring of shared volumes with the other nodes. */
  exchange?: UsageExchange;
  /** How often the background pass looks at every volume (a stat or two each; walks only what may have changed). */
  tickMs?: number;
  /** A mounted volume's data is walked again when its walk is older than this. */
  refreshMs?: number;
  /** Idle shared volumes (measured, not mounted or snapshotted here since) are looked at in one pass in this many (usage-turns.ts; 1: all). */
  sharedSpread?: number;
}

/**
 * Data bytes: a `du`-like walk of the live data, cached per volume (and in DATA_DIR/usage.json across
 * restarts), refreshed by a background pass when the volume may have changed: never walked, restored
 * (another data inode), unmounted since the walk, or mounted and the walk older than refreshMs.
 * Snapshot bytes: from the manifests (snapshots/space.ts), re-read when the snapshots directory changed.
 * Trash bytes: one walk per trash entry (a removed volume does not change).
 */
export class UsageTracker {
  private readonly data = new Map<string, DataEntry>();
  /** Each volume's key (name + incarnation), kept: the maps here and the exchange's are looked up with the same strings. */
  private readonly keys = new UsageKeys();
  /** `at`: when last checked (ms; a number: every pass sets it, for each of 10,000 volumes). */
  private readonly snaps = new Map<string, { sig: string; space: SnapshotSpace; kinds: Kinds; cache: SpaceCache | undefined; at: number }>();
  private readonly trash: TrashSizes;
  /** Shared volumes as the other nodes measured them, and what this node published (usage-exchange.ts). */
  private readonly exchanged = new UsageExchanger(this.keys);
  /** The newest snapshot of each volume (by name; worktrees of the history not counted), from the passes and from each new snapshot. */
  private readonly lastSnapshot = new Map<string, string>();
  /** Volumes mounted here since their last walk. */
  private readonly touched = new Set<string>();
  /** Volumes snapshotted here since their last look: looked at in the next pass, whatever their turn (sharedSpread). */
  private readonly recheck = new Set<string>();
  /** Volumes whose snapshots changed here, to look at now (snapshotsChanged), and the look under way. */
  private readonly soon = new Set<string>();
  private soonRun: Promise<void> | undefined;
  /** Background passes begun (whose turn it is, see sharedSpread). */
  private passNo = 0;
  private readonly ticker: Periodic;
  /** Which idle shared volumes a pass leaves alone (usage-turns.ts). */
  private readonly looks: SharedLooks;
  private dirty = false;
  private changes = 0;
  /** What the running background pass changed: counted as one change, at its end (see `version`). */
  private passChanged = false;

  constructor(
    private readonly volumes: VolumeService,
    private readonly listSnapshots: (volume: string) => Promise<Array<{ id: string; method: string; createdAt: string; kind?: string }>>,
    private readonly file: string,
    private readonly log: Logger,
    private readonly opts: UsageOptions = {},
  ) {
    this.trash = new TrashSizes(volumes, log);
    this.looks = new SharedLooks(opts.sharedSpread ?? SHARED_SPREAD);
    this.ticker = new Periodic(opts.tickMs ?? 30_000, () => this.passOnce(), (err) => this.log.warn({ err: errorMessage(err) }, 'usage pass failed'));
  }

  /** Read what was measured before a restart (a cache: a bad file only means measuring again). */
  async load(): Promise<void> {
    try {
      const saved = await readJson<Saved>(this.file);
      if (saved?.v !== 1) return;
      for (const [k, e] of Object.entries(saved.data ?? {})) if (typeof e?.bytes === 'number' && typeof e.ino === 'number') this.data.set(this.keys.seed(k), e);
      this.trash.seed(saved.trash ?? {});
      for (const n of Array.isArray(saved.touched) ? saved.touched : []) if (typeof n === 'string') this.touched.add(n);
      this.changes++;
    } catch (err) {
      this.log.warn({ file: this.file, err: errorMessage(err) }, 'usage cache unreadable; measuring again');
    }
  }

  /**
   * Changes whenever a figure that `of`, `lastSnapshotOf` or the trash's figures return may have changed; what
   * a background pass changes, once at its end (a pass over 10,000 volumes after a restart changes each of
   * them: a listing cached by this version is then made again once, not at every call while the pass runs).
   */
  get version(): number {
    return this.changes;
  }

  private changed(byPass = false): void {
    if (byPass) this.passChanged = true;
    else this.changes++;
  }

  start(): void {
    this.ticker.start(true);
  }

  async stop(): Promise<void> {
    await this.ticker.stop();
    this.soon.clear();
    await this.soonRun;
    await this.save();
  }

  /** What is known now (no I/O): of a shared volume, the newest figures of any node. */
  of(v: VolumeInfo): VolumeUsage {
    if (!v.shared) return this.ownOf(v);
    const local = this.localOf(v);
    const all = [local, ...this.exchanged.remoteOf(this.keys.of(v))].filter((u): u is PublishedUsage => u !== undefined);

    const trashBytes = this.trash.sumOf(v.name);
    if (all.length === 0) return { dataBytes: null, measuredAt: null, snapshotBytes: null, snapshots: 0, snapshotNote: 'not measured yet', trashBytes };
    const data = all.length === 1 ? all[0]! : newest(all, (u) => u.measuredAt ?? '');
    const snaps = all.length === 1 ? all[0]! : newest(all, (u) => u.checkedAt);
    return figures(data.dataBytes, data.measuredAt, snaps.snapshotBytes, snaps.snapshots, snaps, snaps.snapshotNote, trashBytes);
  }

  /** `of` a local volume: this node's figures only (asked for 10,000 volumes at a time: one object each). */
  private ownOf(v: VolumeInfo): VolumeUsage {
    const k = this.keys.of(v);
    const d = this.data.get(k);
    const s = this.snaps.get(k);
    const trashBytes = this.trash.sumOf(v.name);
    if (!d && !s) return { dataBytes: null, measuredAt: null, snapshotBytes: null, snapshots: 0, snapshotNote: 'not measured yet', trashBytes };
    return figures(d?.bytes ?? null, d?.at ?? null, s ? s.space.bytes : null, s?.space.count ?? 0, s?.kinds ?? {}, s ? s.space.note : 'not measured yet', trashBytes);
  }

  /** What this node measured of a volume itself; undefined if nothing. */
  private localOf(v: VolumeInfo): PublishedUsage | undefined {
    const k = this.keys.of(v);
    const d = this.data.get(k);
    const s = this.snaps.get(k);
    if (!d && !s) return undefined;
    return {
      createdAt: v.createdAt,
      dataBytes: d?.bytes ?? null,
      measuredAt: d?.at ?? null,
      snapshotBytes: s ? s.space.bytes : null,
      snapshots: s?.space.count ?? 0,
      ...s?.kinds,
      ...(s?.space.note ? { snapshotNote: s.space.note } : !s ? { snapshotNote: 'not measured yet' } : {}),
      checkedAt: s ? new Date(s.at).toISOString() : '',
    };
  }

  /** A snapshot of a volume was just made (the snapshot service's observer). */
  snapshotted(name: string, at: string): void {
    const cur = this.lastSnapshot.get(name);
    if (!cur || at > cur) (this.lastSnapshot.set(name, at), this.changed());
    this.snapshotsChanged(name);
  }

  /**
   * A volume's snapshots changed here (one made or removed): their space and count are looked at again now,
   * not at the next pass (up to its interval later, while inspect and the Hub showed the old count). The data
   * is walked again only if it is due anyway.
   */
  snapshotsChanged(name: string): void {
    this.recheck.add(name);
    this.soon.add(name);
    this.soonRun ??= (async () => {
      await new Promise((r) => setImmediate(r)); // (after the answer to the call that made the change)
      for (const n of this.soon) {
        this.soon.delete(n);
        try {
          await this.measure(this.volumes.get(n), false);
        } catch (err) {
          this.log.debug({ volume: n, err: errorMessage(err) }, 'could not measure a volume whose snapshots changed');
        }
      }
    })().finally(() => (this.soonRun = undefined));
  }

  /** When the newest snapshot of a volume was made, as far as known (no I/O). */
  lastSnapshotOf(name: string): string | undefined {
    return this.lastSnapshot.get(name);
  }

  /** A volume was mounted here (plugin Mount): walk its data again once it is unmounted, even if nobody saw it mounted. */
  mounted(name: string): void {
    this.touch(name);
  }

  /** A volume's live data was changed in place (a restore, a checkout, a reset): walk it again. */
  dataChanged(name: string): void {
    this.touch(name);
  }

  /** (no I/O here, on the plugin path: the set is written with the next save, at the end of a pass or at stop) */
  private touch(name: string): void {
    if (this.touched.has(name)) return;
    this.touched.add(name);
    this.dirty = true;
  }

  trashOf(id: string): TrashUsage {
    return this.trash.of(id);
  }

  /** Trash bytes per removed volume name and pool (measured entries only), for /metrics. */
  trashByName(): Array<{ volume: string; pool: string; bytes: number }> {
    return this.trash.byName();
  }

  /** Measure one volume now, data and snapshots (`inspect --usage`, `?usage=true`). */
  async refresh(name: string): Promise<VolumeUsage> {
    const v = this.volumes.get(name);
    await this.measure(v, true);
    await this.measureTrash();
    await this.save();
    return this.of(this.volumes.get(name));
  }

  /** Measure the trash entries not measured yet, now. */
  async measureTrash(): Promise<void> {
    if (await this.trash.measure()) (this.dirty = true, this.changed());
  }

  /**
   * One background pass over every volume and the trash; a pass asked for while one runs shares it. Of the
   * shared volumes, this node measures those it looks after (the ones it runs the schedules of) and those
   * mounted here since their last walk, asking their pool once per pass, not once per volume; then it
   * publishes what it measured and reads the other nodes' figures, one file per node and pool.
   */
  pass(): Promise<void> {
    return this.ticker.run();
  }

  private async passOnce(): Promise<void> {
    try {
      await this.passBody();
    } finally {
      if (this.passChanged) (this.passChanged = false, this.changed());
    }
  }

  private async passBody(): Promise<void> {
    const ex = this.opts.exchange?.active ? this.opts.exchange : undefined;
    // The exchange with other nodes needs the volumes of the pass (those of its start, less any removed meanwhile):
    // gathered as the pass goes, one breath at a time (made in one piece, 10,000 of them held up every plugin call
    // for ~10 ms). Without shared pools they are not kept: not 10,000 objects held across every await of the pass,
    // and so promoted.
    const vols: VolumeInfo[] | undefined = ex ? [] : undefined;
    const here = ex ? await this.volumes.scheduledHere().catch(() => (v: VolumeInfo) => !v.shared) : () => true;
    const checks = new Map<string, Promise<boolean>>();
    const available = (pool: string) => {
      let c = checks.get(pool);
      if (!c) checks.set(pool, (c = this.volumes.poolOf({ pool } as VolumeRecord).checkAvailable().then(() => true, () => false)));
      return c;
    };
    const turn = this.passNo++;
    // one listing of each shared pool's volume directories in one pass out of several (usage-turns.ts), made when
    // first needed (before any look of it)
    const listings = new Map<string, Promise<Map<string, string> | undefined>>();
    const rootSigOf = async (v: VolumeInfo) => {
      if (!this.looks.listsIn(turn)) return undefined;
      let l = listings.get(v.pool);
      if (!l) {
        const pool = this.volumes.poolOf({ pool: v.pool } as VolumeRecord);
        listings.set(v.pool, (l = pool.rootSigs ? pool.rootSigs().catch(() => undefined) : Promise.resolve(undefined)));
      }
      return (await l)?.get(v.name);
    };
    const mine = new Set<string>();
    const breathe = breather();
    for (const v of this.volumes.listEach()) {
      await breathe();
      vols?.push(v);
      if (v.shared && !here(v) && !this.touched.has(v.name)) continue;
      try {
        let rootSig: string | undefined;
        if (v.shared) {
          if (!(await available(v.pool))) continue;
          mine.add(this.keys.of(v));
          rootSig = await rootSigOf(v);
          if (this.restsThisPass(v, turn, rootSig)) continue;
        }
        this.recheck.delete(v.name);
        await this.measure(v, false, v.shared, true);
        if (v.shared) this.looks.looked(this.keys.of(v), rootSig, turn);
      } catch (err) {
        this.log.debug({ volume: v.name, err: errorMessage(err) }, 'could not measure a volume');
      }
    }
    if (ex && vols) {
      await this.exchanged.exchange(ex, vols, mine, available, (v) => this.localOf(v), breathe, (pool, err) => this.log.debug({ pool, err: errorMessage(err) }, 'could not exchange usage figures'));
      this.changed(true);
    }
    // what is kept of volumes that are gone (or made again: another incarnation) is dropped
    const current = this.volumes.incarnations();
    const live = (k: string) => current.get(k.slice(0, k.indexOf('\0'))) === k.slice(k.indexOf('\0') + 1);
    for (const k of [...this.data.keys()]) if ((await breathe(), !live(k))) (this.data.delete(k), (this.dirty = true), this.changed(true));
    for (const k of [...this.snaps.keys()]) if ((await breathe(), !live(k))) (this.snaps.delete(k), this.changed(true));
    await this.looks.prune(live, breathe);
    for (const n of this.touched) if (!current.has(n)) this.touched.delete(n);
    for (const n of this.recheck) if (!current.has(n)) this.recheck.delete(n);
    for (const n of this.lastSnapshot.keys()) if (!current.has(n)) (this.lastSnapshot.delete(n), this.changed(true));

    await this.measureTrash();
    await this.save();
  }

  /**
   * A shared volume this pass need not look at (usage-turns.ts): measured, not mounted or snapshotted here since,
   * and unchanged by the pool's last listing or not its turn. A change made on another node (a restore, a snapshot)
   * then shows within sharedSpread passes, and an idle cluster's NAS sees one listing in sharedSpread passes per
   * node, and of the volumes with snapshots 1/sharedSpread of the look-ups (bench/share-scale.ts).
   */
  private restsThisPass(v: VolumeInfo, turn: number, rootSig: string | undefined): boolean {
    const k = this.keys.of(v);
    const d = this.data.get(k);
    const s = this.snaps.get(k);
    const idle = v.mounts === 0 && !this.touched.has(v.name) && !this.recheck.has(v.name) && !!d && !d.mounted && !!s;
    return this.looks.rests(k, v.name, idle, !!s?.sig, !!this.volumes.poolOf({ pool: v.pool } as VolumeRecord).rootSigs, rootSig, turn);
  }

  /** `byPass`: by the background pass (its changes count once, at its end). */
  private async measure(v: VolumeInfo, force: boolean, checked = false, byPass = false): Promise<void> {
    // (the key the lists look up: the same string, so the map compares no characters)
    const k = this.keys.of(v);
    const rec = this.volumes.recordOf(v.name);
    const pool = this.volumes.poolOf(rec);
    // a shared pool is asked first, through its deadline (pools/share-io.ts): a hung share is skipped, not walked
    if (pool.shared && !checked) await pool.checkAvailable();
    let ino: number;
    try {
      ino = (await lstat(pool.mountpoint(v.name))).ino;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    const d = this.data.get(k);
    const mounted = v.mounts > 0;
    // (a volume found mounted, as after a restart of ferryd, is walked again once unmounted)
    if (mounted) this.touch(v.name);
    const touched = this.touched.has(v.name);
    const stale = !d || d.ino !== ino || ((d.mounted || touched) && !mounted) || (mounted && Date.now() - Date.parse(d.at) >= (this.opts.refreshMs ?? 5 * 60_000));
    if (force || stale) {
      const at = new Date().toISOString();
      if (!mounted) this.touched.delete(v.name); // (deleted before the walk: a Mount during it walks again next time)
      const bytes = await pool.usage(v.name);
      this.data.set(k, { bytes, at, ino, mounted });
      this.dirty = true;
      this.changed(byPass);
    }
    const dir = volumeDirs(pool, v.name).snaps;
    const sig = await signature(dir, !pool.shared);
    const s = this.snaps.get(k);
    if (force || !s || s.sig !== sig) {
      const list = sig ? await this.listSnapshots(v.name) : [];
      const cache = s?.cache ?? (list.length ? new Map() : undefined); // (none for the many volumes without snapshots)
      const newest = list.filter((x) => x.kind !== 'worktree').reduce<string | undefined>((a, x) => (a === undefined || x.createdAt > a ? x.createdAt : a), undefined);
      if (newest) this.lastSnapshot.set(v.name, newest);
      else this.lastSnapshot.delete(v.name);
      const kinds: Kinds = {};
      for (const x of list) if (x.kind === 'commit' || x.kind === 'worktree') kinds[`${x.kind}s`] = (kinds[`${x.kind}s`] ?? 0) + 1;
      this.snaps.set(k, { sig, space: await snapshotSpace(dir, list, cache ?? new Map()), kinds, cache, at: Date.now() });
      this.changed(byPass);
    } else {
      s.at = Date.now();
      if (v.shared) this.changed(byPass); // (when it was checked picks the newest figures of a shared volume)
    }
  }

  private async save(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const saved: Saved = { v: 1, data: Object.fromEntries(this.data), trash: this.trash.saved(), touched: [...this.touched] };
    await writeJsonAtomic(this.file, saved).catch((err) => this.log.warn({ file: this.file, err: errorMessage(err) }, 'could not write the usage cache'));
  }
}

/** The element with the greatest `by`. */
function newest<T>(xs: T[], by: (x: T) => string): T {
  return xs.reduce((a, b) => (by(b) > by(a) ? b : a));
}


/**
 * Changes when a snapshot is made or removed, or a manifest rewritten (all of which rename or unlink in the directory).
 * `local`: in a local pool, asked with a synchronous stat that says "none" without an error object: most volumes have
 * no snapshots directory, each pass asks for each of them (10,000 ENOENT errors, stacks and rejections per pass), and
 * the lstat of the data beside it has just brought their directory's entries into the cache. A share is asked as before.
 */
async function signature(dir: string, local: boolean): Promise<string> {
  try {
    const st = local ? statSync(dir, { throwIfNoEntry: false }) : await stat(dir);
    if (!st) return '';

    const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    return `${st.mtimeMs}:${names.join(',')}`;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return '';
    throw err;
  }
}

/** Of a volume's snapshots, the commits and saved working data of its history (absent when none). */
type Kinds = Pick<VolumeUsage, 'commits' | 'worktrees'>;

/**
 * A VolumeUsage, in one fixed shape, the fields in the order JSON gives them (an absent one undefined, which JSON
 * leaves out): made 10,000 times per list, and an object made by spreads (`...(note ? {…} : {})`) takes V8's slow
 * paths both to make and to stringify.
 */
function figures(dataBytes: number | null, measuredAt: string | null, snapshotBytes: number | null, snapshots: number, kinds: Kinds, note: string | undefined, trashBytes: number | null): VolumeUsage {
  const { commits, worktrees } = kinds;
  return { dataBytes, measuredAt, snapshotBytes, snapshots, commits: commits || undefined, worktrees: worktrees || undefined, snapshotNote: note || undefined, trashBytes };
}
