import { lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync, mkdirSync, symlinkSync, linkSync, chmodSync, chownSync, utimesSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/**
 * Fill a directory with what a volume holds in life: files of several sizes, modes and owners, set
 * times, symlinks (one dangling), hard links, empty directories, a sparse file and a FIFO.
 */
export function populate(root: string, files = 200): void {
  mkdirSync(join(root, 'a/b/c'), { recursive: true });
  mkdirSync(join(root, 'empty'), { mode: 0o700 });
  mkdirSync(join(root, 'empty-too/deeper'), { recursive: true });
  for (let i = 0; i < files; i++) {
    const dir = i % 3 === 0 ? root : i % 3 === 1 ? join(root, 'a') : join(root, 'a/b/c');
    const p = join(dir, `file-${i}.bin`);
    writeFileSync(p, randomBytes(i % 10 === 0 ? 256 * 1024 : 1 + (i * 37) % 5000));
    chmodSync(p, [0o644, 0o600, 0o755, 0o640][i % 4]!);
    if (i % 5 === 0) chownSync(p, 1000 + i, 2000 + i);
    utimesSync(p, 1_600_000_000 + i, 1_600_000_000 + i * 7);
  }
  symlinkSync('a/b/c/file-2.bin', join(root, 'link-to-file'));
  symlinkSync('does/not/exist', join(root, 'dangling'));
  writeFileSync(join(root, 'hard-1'), 'two names, one inode');
  linkSync(join(root, 'hard-1'), join(root, 'a/hard-2'));
  const fd = openSync(join(root, 'sparse.img'), 'w');
  ftruncateSync(fd, 64 * 1024 * 1024);
  writeSync(fd, 'the end', 64 * 1024 * 1024 - 7);
  closeSync(fd);
  execFileSync('mkfifo', [join(root, 'a/fifo')]);
  chownSync(join(root, 'a/b'), 33, 33);
  chmodSync(join(root, 'a/b'), 0o750);
  utimesSync(join(root, 'a/b'), 1_500_000_000, 1_500_000_000);
  utimesSync(join(root, 'empty'), 1_500_000_100, 1_500_000_100);
}

export interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  mtime: string;
  sha256?: string;
  target?: string;
  /** Other paths that are the same inode (hard links), sorted. */
  links?: string[];
  /** Sparse files stay sparse: allocated bytes, rounded up to MiB. */
  allocatedMiB?: number;
}

/**
 * Everything a restore must bring back, per path. Directory times are compared to the millisecond
 * (they are set last, through a float), file times to the nanosecond.
 */
export function fingerprint(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const inodes = new Map<bigint, string[]>();
  const walk = (rel: string) => {
    const p = rel ? join(root, rel) : root;
    const st = lstatSync(p, { bigint: true });
    const base = { mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid) };
    if (st.isDirectory()) {
      out[rel || '.'] = { type: 'dir', ...base, mtime: (st.mtimeNs / 1_000_000n).toString() };
      for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
      return;
    }
    const mtime = st.mtimeNs.toString();
    if (st.isSymbolicLink()) out[rel] = { type: 'symlink', ...base, mtime, target: readlinkSync(p) };
    else if (st.isFIFO()) out[rel] = { type: 'fifo', ...base, mtime };
    else if (st.isFile()) {
      out[rel] = { type: 'file', ...base, mtime, size: Number(st.size), sha256: createHash('sha256').update(readFileSync(p)).digest('hex'), allocatedMiB: Math.ceil(Number(st.blocks) * 512 / 1048576) };
      if (st.nlink > 1n) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), rel]);
    } else out[rel] = { type: 'other', ...base, mtime };
  };
  walk('');
  for (const group of inodes.values()) for (const rel of group) out[rel]!.links = [...group].sort();
  return out;
}

/** Identities (device:inode) of every regular file under root. */
export function fileInodes(root: string): Set<string> {
  const s = new Set<string>();
  const walk = (p: string) => {
    const st = lstatSync(p, { bigint: true });
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else if (st.isFile()) s.add(`${st.dev}:${st.ino}`);
  };
  walk(root);
  return s;
}
