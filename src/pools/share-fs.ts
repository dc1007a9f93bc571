/** The filesystem calls made on a share, as one interface: ShareIo (a child process with deadlines) and the direct calls implement it. */
/**
 * The filesystem calls the shared store makes, all of them on the share. ferryd gives it a pool's
 * ShareIo (pools/share-io.ts: a child process, a deadline per call), so that a hung share fails these
 * calls with `unavailable` instead of stalling the daemon; errors of the calls themselves keep their
 * errno code (ENOENT, EEXIST...).
 */
export interface ShareFs {
  readText(path: string): Promise<string>;
  /**
   * Write a temporary file beside `path`, fsync, rename over it, fsync the directory. `makeDir`: make the directory
   * first (mkdir -p, mode 0700) in the same call, one round trip to the share instead of two.
   */
  writeAtomic(path: string, text: string, makeDir?: boolean): Promise<void>;
  /** Create `path` exclusively (O_EXCL), write and fsync it. */
  writeNew(path: string, text: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  /** The link count of `path` (stat). */
  nlink(path: string): Promise<number>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  /**
   * The entries of `dir` with what tells a rewritten file apart (inode, mtime, ctime, size), in one listing:
   * on a FUSE or NFS share the kernel's READDIRPLUS brings the attributes with the names, so the stats cost
   * the server nothing more (see cluster/beat-watch.ts).
   */
  readdirSigs(dir: string): Promise<Array<[name: string, sig: string]>>;
  /** The signature of one path, as readdirSigs gives it (a directory's changes with its entries). */
  sig(path: string): Promise<string>;
  /** mkdir -p, mode 0700. */
  mkdir(dir: string): Promise<void>;
  fsyncDir(dir: string): Promise<void>;
}
