/**
 * What the live tree looked like when a snapshot was taken, per regular file and symlink: inode,
 * ctime (ns) and size. A file whose inode, ctime and size are unchanged since then still has the snapshot's content
 * (ctime moves on every write, chmod, chown and link change, and cannot be set by users), so the next
 * snapshot can hard-link the previous snapshot's copy instead of copying the file again.
 */
export type Manifest = Record<string, [ino: number, ctimeNs: string, size: number]>;
