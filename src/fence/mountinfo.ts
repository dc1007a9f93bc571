/** Reading /proc/PID/mountinfo: which mounts of a filesystem a process's mount namespace has, by device and root. */
import { readFileSync } from 'node:fs';

export interface MountLine {
  dev: string;
  /** The mounted directory's path inside its filesystem (a bind mount's source). */
  root: string;
  mountPoint: string;
  /** The filesystem type (after the ` - ` separator), e.g. `fuse.glusterfs`. */
  fstype?: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): MountLine[] {
  const out: MountLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const sep = f.indexOf('-', 6);
    out.push({ dev: f[2]!, root: unescape(f[3]!), mountPoint: unescape(f[4]!), ...(sep > 0 && f[sep + 1] ? { fstype: f[sep + 1] } : {}) });
  }
  return out;
}

/**
 * Where `path` lives, from a mountinfo text, without touching the filesystem (a dead share would hang a stat):
 * the device of the deepest mount above it and the path inside that filesystem. `path` must be given as
 * the mounts name it (no symlinks).
 */
export function locate(path: string, mountinfo: string): { dev: string; fsRoot: string } | undefined {
  let best: MountLine | undefined;
  for (const m of parseMountinfo(mountinfo)) {
    const inside = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(m.mountPoint + '/');
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  if (!best) return undefined;
  const rest = best.mountPoint === '/' ? path : path.slice(best.mountPoint.length);
  const fsRoot = (best.root === '/' ? '' : best.root) + rest;
  return { dev: best.dev, fsRoot: fsRoot || '/' };
}

export function readMountinfo(pid: number | 'self'): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
}
