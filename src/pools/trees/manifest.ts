/**
 * What a snapshot holds, for the pools whose snapshots ferryd builds itself (hard-link and reflink pools),
 * kept beside its tree as `ID.manifest.json`.
 *
 * Every regular file, symlink and special file of the volume at that instant has an entry with its
 * inode, ctime (ns) and size in the live tree then: a live file whose inode, ctime and size are unchanged
 * still has that content (ctime moves on every write, chmod, chown and link change and cannot be set by
 * users), so the next snapshot need not copy it again.
 *
 * Two layouts:
 * - `delta` (pools that only this ferryd writes): the snapshot's tree holds only the files that changed since
 *   the previous snapshot; an unchanged file names the snapshot that holds its copy (`holder`), which is
 *   always an earlier snapshot of the same volume. Directories, and hard links inside the volume, are
 *   recorded here and made when the snapshot is materialised (restore, clone, backup). A snapshot costs a
 *   walk of the live tree plus copies of what changed, nothing per unchanged file.
 * - `full` (shared pools, where another host may take or delete a snapshot at the same moment): the tree is
 *   complete; unchanged files are hard links to the previous snapshot's copies, so no snapshot ever
 *   depends on another one existing.
 * Snapshots made before this format (a plain `{rel: [ino, ctime, size]}` object) are full trees.
 */
export interface Manifest {
  v: 2;
  layout: 'delta' | 'full';
  /** Directories, parents before children ('' is the root): mode, owner and times are set from here (delta). */
  dirs: DirEntry[];
  /** Everything else. `holder` '' means this snapshot's own tree. */
  files: FileEntry[];
  /** Hard links inside the volume: `other` is made a link to `first` (delta; full trees hold them already). */
  links: Array<[first: string, other: string]>;
}

export type DirEntry = [rel: string, mode: number, uid: number, gid: number, atimeNs: string, mtimeNs: string];
export type FileEntry = [rel: string, ino: number, ctimeNs: string, size: number, holder: string];

type LegacyManifest = Record<string, [ino: number, ctimeNs: string, size: number]>;

/** Parse a manifest file's text, in either format. */
export function parseManifest(text: string): Manifest {
  const raw = JSON.parse(text) as Manifest | LegacyManifest;
  if ((raw as Manifest).v === 2) return raw as Manifest;
  const files: FileEntry[] = Object.entries(raw as LegacyManifest).map(([rel, [ino, ctime, size]]) => [rel, ino, ctime, size, '']);
  return { v: 2, layout: 'full', dirs: [], files, links: [] };
}

/** A file's inode and ctime in the live volume when the snapshot was taken ('' ctime: it changed meanwhile). */
export type LiveIdentity = (rel: string) => { ino: number; ctime: string } | undefined;

/** Each path's live inode and ctime, from the manifest (a backup of the snapshot compares these, not its copy's). */
export function liveIdentity(m: Manifest): LiveIdentity {
  const byRel = new Map<string, FileEntry>();
  for (const e of m.files) byRel.set(e[0], e);
  // (a hard link inside the volume is the same live file as its first name)
  for (const [first, other] of m.links) {
    const e = byRel.get(first);
    if (e && !byRel.has(other)) byRel.set(other, e);
  }
  return (rel) => {
    const e = byRel.get(rel);
    return e && { ino: e[1], ctime: e[2] };
  };
}

/** Where each path's content lives, from the snapshot `id`'s point of view: '' becomes `id`. */
export function holderOf(entry: FileEntry, id: string): string {
  return entry[4] || id;
}
