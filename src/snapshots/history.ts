/** The git-like history of a volume: commits, log, branches, checkout and reset, kept in its refs.json. */
import { randomBytes } from 'node:crypto';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import { FerryError } from '../util/errors.js';
import type { VolumeService } from '../volumes/service.js';
import type { VolumeRecord } from '../catalog/catalog.js';
import type { CreateSnapshotOptions, SnapshotRecord } from './record.js';
import type { SwitchOptions } from './swap.js';
import { makeDirs } from '../util/make-dirs.js';

interface Refs {
  head: string;
  branches: Record<string, string | null>;
  /** Per branch, the snapshot of its working state when another branch was checked out. */
  worktrees: Record<string, string>;
}

const BRANCH_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

/** A branch the volume does not have; `orCreate` adds how to make it. */
function noBranch(volume: string, branch: string, orCreate = false): FerryError {
  const create = orCreate ? `, \`ferry checkout -b ${volume} ${branch}\` creates it` : '';
  return new FerryError('not_found', `volume ${volume} has no branch ${branch}; \`ferry branch ${volume}\` lists them${create}`);
}

/** Why a commit with an empty message is refused (by the API, and by the CLI before it asks). */
export const COMMIT_NEEDS_MESSAGE = 'a commit needs a message: ferry commit VOL -m "what changed"';

/** What the history needs of the snapshot store (SnapshotService). */
export interface HistoryStore {
  dirs(rec: VolumeRecord): { root: string; refs: string };
  listOf(rec: VolumeRecord, all?: boolean): Promise<SnapshotRecord[]>;
  find(rec: VolumeRecord, ref: string): Promise<SnapshotRecord>;
  /** Make a snapshot; the caller holds the volume's lock. */
  createLocked(rec: VolumeRecord, opts: CreateSnapshotOptions): Promise<SnapshotRecord>;
  removeLocked(rec: VolumeRecord, snap: SnapshotRecord): Promise<void>;
  /** Swap the live data for a copy of a snapshot (all or nothing under a crash). */
  replaceData(rec: VolumeRecord, snap: SnapshotRecord): Promise<void>;
  /** Run `fn` with the volume unmounted everywhere (its containers stopped, and started again after, if asked). */
  switching<T>(volume: string, opts: SwitchOptions, what: string, fn: (rec: VolumeRecord) => Promise<T>, check?: (rec: VolumeRecord) => Promise<unknown>): Promise<T>;
}

export class SnapshotHistory {
  constructor(
    private readonly store: HistoryStore,
    private readonly volumes: Pick<VolumeService, 'withLock' | 'recordOf'>,
  ) {}

  /** The branches whose tip is this snapshot (it cannot be removed while one is). */
  async branchesAt(rec: VolumeRecord, id: string): Promise<string[]> {
    const refs = await this.refs(rec);
    return Object.entries(refs.branches).filter(([, c]) => c === id).map(([b]) => b);
  }

  /** Whether this snapshot is a branch's saved working data still (not one a crash left on no branch). */
  async keepsWorktree(rec: VolumeRecord, id: string): Promise<boolean> {
    return Object.values((await this.refs(rec)).worktrees).includes(id);
  }

  /** The commit a branch points at (undefined: no such branch, or none yet). */
  async tipOf(rec: VolumeRecord, branch: string): Promise<string | undefined> {
    return (await this.refs(rec)).branches[branch] ?? undefined;
  }

  private async refs(rec: VolumeRecord): Promise<Refs> {
    const r = (await readJson<Refs>(this.store.dirs(rec).refs)) ?? { head: 'master', branches: { master: null }, worktrees: {} };
    // (looked up by names users type: no name may find a member of Object.prototype, such as "constructor")
    return { head: r.head, branches: Object.assign(Object.create(null) as Refs['branches'], r.branches), worktrees: Object.assign(Object.create(null) as Refs['worktrees'], r.worktrees) };
  }

  private async saveRefs(rec: VolumeRecord, refs: Refs): Promise<void> {
    await makeDirs(this.store.dirs(rec).root);
    await writeJsonAtomic(this.store.dirs(rec).refs, refs);
  }

  async commit(volume: string, message: string): Promise<SnapshotRecord> {
    if (!message.trim()) throw new FerryError('invalid', COMMIT_NEEDS_MESSAGE);
    return this.volumes.withLock(volume, async () => {
      const rec = this.volumes.recordOf(volume);
      const refs = await this.refs(rec);
      const parent = refs.branches[refs.head] ?? undefined;
      const snap = await this.store.createLocked(rec, { kind: 'commit', origin: 'history', message, branch: refs.head, ...(parent ? { parent } : {}), name: `commit-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}` });
      refs.branches[refs.head] = snap.id;
      await this.saveRefs(rec, refs);
      return snap;
    });
  }

  /** Commits reachable from the tip of `branch` (the current one when not given), newest first. */
  async log(volume: string, branch?: string): Promise<{ branch: string; commits: SnapshotRecord[] }> {
    const rec = this.volumes.recordOf(volume);
    const refs = await this.refs(rec);
    const name = branch ?? refs.head;
    if (!(name in refs.branches)) throw noBranch(volume, name);
    const byId = new Map((await this.store.listOf(rec)).map((s) => [s.id, s]));
    const commits: SnapshotRecord[] = [];
    for (let id = refs.branches[name] ?? undefined; id; ) {
      const c = byId.get(id);
      if (!c) break;
      commits.push(c);
      id = c.parent;
    }
    return { branch: name, commits };
  }

  async branches(volume: string): Promise<{ current: string; branches: Array<{ name: string; tip: string | null }> }> {
    const refs = await this.refs(this.volumes.recordOf(volume));
    return { current: refs.head, branches: Object.entries(refs.branches).map(([name, tip]) => ({ name, tip })).sort((a, b) => a.name.localeCompare(b.name)) };
  }

  async createBranch(volume: string, name: string): Promise<{ name: string; tip: string | null }> {
    if (!BRANCH_NAME.test(name)) throw new FerryError('invalid', `branch name ${JSON.stringify(name)}: use up to 64 characters of [a-zA-Z0-9_.-], starting with a letter or digit`);
    // a ref names a branch before a commit: a branch called HEAD, or like a commit id, would hide them
    if (name === 'HEAD' || /^[0-9a-f]{4,}$/.test(name)) {
      throw new FerryError('invalid', `branch name ${JSON.stringify(name)} would read as ${name === 'HEAD' ? 'the current commit' : 'a commit id'} in reset and checkout; pick another (e.g. ${JSON.stringify(`b-${name}`)})`);
    }
    return this.volumes.withLock(volume, async () => {
      const rec = this.volumes.recordOf(volume);
      const refs = await this.refs(rec);
      if (name in refs.branches) throw new FerryError('exists', `volume ${volume} already has a branch ${name}`);
      refs.branches[name] = refs.branches[refs.head] ?? null;
      await this.saveRefs(rec, refs);
      return { name, tip: refs.branches[name] ?? null };
    });
  }

  /**
   * Delete a branch (never the current one). Like `git branch -d`, refused when it holds commits no other
   * branch reaches, or saved uncommitted working data, unless `force`: then the saved working data is
   * removed, and the commits stay as snapshots on no branch (`ferry snapshot ls --all` lists them, `ferry
   * snapshot rm` removes them), so a forced delete loses only what was never committed.
   */
  async deleteBranch(volume: string, name: string, { force = false } = {}): Promise<{ name: string; tip: string | null; orphaned: string[]; droppedWorktree?: string }> {
    return this.volumes.withLock(volume, async () => {
      const rec = this.volumes.recordOf(volume);
      const refs = await this.refs(rec);
      if (!(name in refs.branches)) throw noBranch(volume, name);
      if (name === refs.head) throw new FerryError('in_use', `${volume} is on branch ${name}; \`ferry checkout ${volume} OTHER\` to another branch first`);
      const parentOf = new Map((await this.store.listOf(rec)).map((s) => [s.id, s.parent]));
      const reach = (tip: string | null | undefined, into: Set<string>): Set<string> => {
        for (let id = tip ?? undefined; id && parentOf.has(id) && !into.has(id); id = parentOf.get(id)) into.add(id);
        return into;
      };
      const others = new Set<string>();
      for (const [b, tip] of Object.entries(refs.branches)) if (b !== name) reach(tip, others);
      const orphaned = [...reach(refs.branches[name], new Set())].filter((id) => !others.has(id));
      const saved = refs.worktrees[name];
      if (!force && (orphaned.length > 0 || saved)) {
        const what = [orphaned.length ? `${orphaned.length} commit${orphaned.length > 1 ? 's' : ''} on no other branch` : '', saved ? `uncommitted working data (snapshot ${saved})` : ''].filter(Boolean).join(' and ');
        throw new FerryError('in_use', `branch ${name} of ${volume} holds ${what}; \`ferry branch -D ${volume} ${name}\` deletes it anyway${orphaned.length ? ' (its commits stay as snapshots, on no branch)' : ''}${saved ? ', and the uncommitted data goes' : ''}`);
      }
      const tip = refs.branches[name] ?? null;
      delete refs.branches[name];
      delete refs.worktrees[name];
      // the refs first: a crash before the worktree snapshot goes leaves it on no branch, never a branch without it
      await this.saveRefs(rec, refs);
      if (saved) {
        const s = (await this.store.listOf(rec, true)).find((x) => x.id === saved);
        if (s) await this.store.removeLocked(rec, s);
      }
      return { name, tip, orphaned, ...(saved ? { droppedWorktree: saved } : {}) };
    });
  }

  /**
   * Switch branches. With `create`, a new branch starts at the current commit and keeps the working data
   * (like `git checkout -b`). Otherwise the working data of the branch we leave is kept as a hidden
   * worktree snapshot (nothing uncommitted is lost), and the data becomes the other branch's saved
   * worktree, or its tip commit.
   */
  async checkout(volume: string, branch: string, { create = false, ...switchOpts }: { create?: boolean } & SwitchOptions = {}): Promise<{ branch: string; commit: string | null }> {
    if (create) {
      const b = await this.createBranch(volume, branch);
      await this.volumes.withLock(volume, async () => {
        const rec = this.volumes.recordOf(volume);
        const refs = await this.refs(rec);
        refs.head = branch;
        await this.saveRefs(rec, refs);
      });
      return { branch, commit: b.tip };
    }
    /** What the data becomes: the branch's saved worktree or its tip; undefined when it is the branch we are on. */
    const targetOf = (refs: Refs): string | undefined => {
      if (!(branch in refs.branches)) throw noBranch(volume, branch, true);
      if (branch === refs.head) return undefined;
      const target = refs.worktrees[branch] ?? refs.branches[branch] ?? undefined;
      if (!target) throw new FerryError('invalid', `branch ${branch} has no commit yet`);
      return target;
    };
    // checked before any container is stopped (a typo must not restart a database), and again under the lock
    const now = await this.refs(this.volumes.recordOf(volume));
    if (targetOf(now) === undefined) return { branch, commit: now.branches[branch] ?? null };
    return this.store.switching(volume, switchOpts, 'switch', async (rec) => {
      const refs = await this.refs(rec);
      const target = targetOf(refs);
      if (target === undefined) return { branch, commit: refs.branches[branch] ?? null };
      const saved = await this.store.createLocked(rec, { kind: 'worktree', origin: 'history', branch: refs.head });
      const previous = refs.worktrees[refs.head];
      refs.worktrees[refs.head] = saved.id;
      await this.saveRefs(rec, refs);
      await this.store.replaceData(rec, await this.store.find(rec, target));
      const left = refs.worktrees[branch];
      delete refs.worktrees[branch];
      refs.head = branch;
      await this.saveRefs(rec, refs);
      for (const id of [previous, left]) {
        if (!id) continue;
        const s = (await this.store.listOf(rec, true)).find((x) => x.id === id);
        if (s) await this.store.removeLocked(rec, s);
      }
      return { branch, commit: refs.branches[branch] ?? null };
    });
  }

  /** `reset --hard REF`: the data becomes commit REF's and the current branch points at it. */
  async reset(volume: string, ref: string, opts: SwitchOptions = {}): Promise<SnapshotRecord> {
    return this.store.switching(
      volume,
      opts,
      'reset',
      async (rec) => {
        const refs = await this.refs(rec);
        const commit = await this.resolveRef(rec, refs, ref);
        await this.store.replaceData(rec, commit);
        refs.branches[refs.head] = commit.id;
        await this.saveRefs(rec, refs);
        return commit;
      },
      async (rec) => this.resolveRef(rec, await this.refs(rec), ref),
    );
  }

  /** A commit id or unique prefix, a branch name, HEAD, HEAD~N, HEAD^ (^ repeatable), BRANCH~N. */
  private async resolveRef(rec: VolumeRecord, refs: Refs, ref: string): Promise<SnapshotRecord> {
    const m = /^(.+?)((?:\^|~\d*)*)$/.exec(ref);
    if (!m) throw new FerryError('invalid', `bad revision ${ref}`);
    const [, base, suffix] = m as unknown as [string, string, string];
    const commits = (await this.store.listOf(rec)).filter((s) => s.kind === 'commit');
    const byId = new Map(commits.map((c) => [c.id, c]));
    let id: string | undefined;
    if (base === 'HEAD') id = refs.branches[refs.head] ?? undefined;
    else if (base in refs.branches) id = refs.branches[base] ?? undefined;
    else {
      const hits = commits.filter((c) => c.id === base || (base.length >= 4 && c.id.startsWith(base)));
      if (hits.length > 1) throw new FerryError('invalid', `commit prefix ${base} is ambiguous: ${hits.map((h) => h.id).join(', ')}`);
      id = hits[0]?.id;
    }
    if (!id) {
      const short = /^[0-9a-f]{1,3}$/.test(base) ? ' (a commit id prefix needs at least 4 characters)' : '';
      throw new FerryError('not_found', `no commit ${JSON.stringify(base)} in the history of ${rec.name}${short}; \`ferry log ${rec.name}\` lists them`);
    }
    for (const step of suffix.match(/\^|~\d*/g) ?? []) {
      const n = step === '^' ? 1 : step === '~' ? 1 : Number(step.slice(1));
      for (let i = 0; i < n; i++) {
        const c = byId.get(id!);
        if (!c) throw new FerryError('not_found', `${ref}: commit ${id} of ${rec.name} was removed (before Ferry kept a history whole when one of its commits is removed); \`ferry snapshot ls ${rec.name} --all\` lists the commits left, to name one by its id`);
        id = c.parent;
        if (!id) throw new FerryError('not_found', `${ref} goes back past the first commit of ${rec.name}`);
      }
    }
    const c = byId.get(id!);
    if (!c) throw new FerryError('not_found', `commit ${id} of ${rec.name} no longer exists`);
    return c;
  }
}
