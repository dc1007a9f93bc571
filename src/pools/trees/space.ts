// What a volume's snapshots hold exclusively, counted from their manifests (no walk of their trees).
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseManifest, holderOf, type Manifest } from './manifest.js';
import { isErrno } from '../../util/errors.js';

export interface SnapshotSpace {
  /** Bytes only the snapshots hold (freed if every snapshot went); null where the pool cannot say cheaply. */
  bytes: number | null;
  /** Snapshots counted (worktrees of the history included). */
  count: number;
  /** Why `bytes` is null, in words for the user. */
  note?: string;
}

export const NOT_MEASURED: Record<string, string> = {
  btrfs: 'not measured: btrfs snapshots share blocks copy-on-write and Ferry does not enable qgroups, which would count them',
  reflink: 'not measured: reflink copies share blocks with the data until it changes; the filesystem does not say cheaply how many',
};

/** Per snapshot: its own bytes, valid while its manifest (and the one before it) are unchanged. */
export type SpaceCache = Map<string, { key: string; bytes: number }>;

/**
 * Hard-link pools keep a copy of every file that changed since the snapshot before it (delta layout: in
 * this snapshot's own tree, `holder` ''; full layout, shared pools: a new inode, while unchanged files are
 * hard links to the previous snapshot's). The live data never shares an inode with a snapshot, so these
 * copies and the manifests are what the snapshots hold exclusively. Sizes are file sizes (sparse files
 * count whole).
 */
export async function snapshotSpace(snaps: string, list: ReadonlyArray<{ id: string; method: string }>, cache: SpaceCache): Promise<SnapshotSpace> {
  const other = list.find((s) => s.method !== 'hardlink');
  if (other) return { bytes: null, count: list.length, note: NOT_MEASURED[other.method] ?? `not measured for snapshots made by ${other.method}` };
  let total = 0;
  let prev: { id: string; manifest?: Manifest } | undefined;
  const seen = new Set<string>();
  for (const s of list) {
    seen.add(s.id);
    const file = join(snaps, `${s.id}.manifest.json`);
    let mtime: number;
    try {
      const st = await stat(file);
      mtime = st.mtimeMs;
      total += st.size;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      mtime = 0; // a snapshot without manifest: counted as nothing (there is no way to tell cheaply)
    }
    const key = `${mtime}:${prev?.id ?? ''}`;
    const hit = cache.get(s.id);
    if (hit?.key === key) {
      total += hit.bytes;
      prev = { id: s.id };
      continue;
    }
    const manifest = mtime ? parseManifest(await readFile(file, 'utf8')) : undefined;
    let own = 0;
    if (manifest?.layout === 'delta') {
      for (const e of manifest.files) if (holderOf(e, s.id) === s.id) own += e[3];
    } else if (manifest) {
      const before = prev && (prev.manifest ?? (await readManifest(snaps, prev.id)));
      const was = new Map((before?.files ?? []).map((e) => [e[0], e]));
      for (const e of manifest.files) {
        const p = was.get(e[0]);
        if (!(p && p[1] === e[1] && p[2] === e[2] && p[3] === e[3])) own += e[3];
      }
    }
    cache.set(s.id, { key, bytes: own });
    total += own;
    prev = { id: s.id, ...(manifest ? { manifest } : {}) };
  }
  for (const id of cache.keys()) if (!seen.has(id)) cache.delete(id);
  return { bytes: total, count: list.length };
}

async function readManifest(snaps: string, id: string): Promise<Manifest | undefined> {
  try {
    return parseManifest(await readFile(join(snaps, `${id}.manifest.json`), 'utf8'));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}
