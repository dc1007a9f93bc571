/** Mounts from /proc/self/mountinfo, and calls with a deadline. */
import { readFile, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mount that holds `path` (the deepest mount point above it), from /proc/self/mountinfo. */
export async function mountOf(path: string): Promise<MountInfo> {
  let real = path;
  // the nearest existing ancestor: the path itself may not exist yet
  for (;;) {
    try {
      real = await realpath(real);
      break;
    } catch {
      if (real === dirname(real)) break;
      real = dirname(real);
    }
  }
  let best: MountInfo = { mountPoint: '/', fsType: 'unknown', source: '' };
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mp = unescape(left.split(' ')[4] ?? '');
    const [fsType = '', source = ''] = right.split(' ');
    const inside = mp === '/' || real === mp || real.startsWith(mp + '/');
    // later lines are mounted on top of earlier ones at the same point
    if (inside && mp.length >= best.mountPoint.length) best = { mountPoint: mp, fsType, source: unescape(source) };
  }
  return best;
}

/** Reject after `ms` with `message` if `p` has not settled (hung network filesystems never answer). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
      timer.unref();
    }),
  ]);
}
