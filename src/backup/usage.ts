/** Which backups use which chunks: what verify reports against and what prune keeps. */
import type { Repository, SnapshotFile } from './repository.js';

/** What the count needs of the repository. */
export type UsageRepo = Pick<Repository, 'loadSnapshots' | 'loadTree'>;

export interface Usage {
  /** chunk id -> backups using it */
  users: Map<string, Set<string>>;
  snaps: SnapshotFile[];
  unreadable: Array<{ snap: SnapshotFile; error: unknown }>;
}

/** Every chunk each backup references (manifest chunks and file chunks). */
export async function chunkUsers(repo: UsageRepo): Promise<Usage> {
  const snaps = await repo.loadSnapshots();
  const users = new Map<string, Set<string>>();
  const use = (id: string, snap: string) => {
    let s = users.get(id);
    if (!s) users.set(id, (s = new Set()));
    s.add(snap);
  };
  const unreadable: Usage['unreadable'] = [];
  for (const s of snaps) {
    for (const t of s.tree) use(t, s.id);
    let nodes;
    try {
      nodes = await repo.loadTree(s);
    } catch (error) {
      unreadable.push({ snap: s, error });
      continue;
    }
    for (const n of nodes) for (const c of n.content ?? []) if (typeof c === 'string') use(c, s.id);
  }
  return { users, snaps, unreadable };
}
