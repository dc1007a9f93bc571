/**
 * Aborting the FUSE connection of a share that does not answer: a process killed while its write is in flight to
 * a FUSE server (GlusterFS cut off from its bricks) cannot exit until the server answers, and when the link comes
 * back the write lands, after another node took the volume over. Aborting the connection (fusectl) fails every
 * request in flight at once: nothing of this node reaches the share after the fence. The mount is dead after it
 * (ENOTCONN) until it is mounted again, which ferryd does for a pool with `mount:`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const CONNECTIONS = '/sys/fs/fuse/connections';

/** Processes of `pids` that have not exited (a zombie has exited: it holds no request). */
export function stillRunning(pids: number[]): number[] {
  return pids.filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  });
}

/**
 * Abort the FUSE connection of device `dev` ("0:NN", from mountinfo). Mounts fusectl for the time of the write
 * when it is not mounted. Returns what was done, or throws with the reason.
 */
export function abortFuseConnection(dev: string): string {
  const m = /^0:(\d+)$/.exec(dev);
  if (!m) throw new Error(`device ${dev} is not a FUSE connection (major 0)`);
  const dir = `${CONNECTIONS}/${m[1]}`;
  let mounted = false;
  if (!existsSync(dir)) {
    execFileSync('mount', ['-t', 'fusectl', 'fusectl', CONNECTIONS], { stdio: 'ignore', timeout: 10_000 });
    mounted = true;
  }
  try {
    if (!existsSync(dir)) throw new Error(`no FUSE connection ${m[1]} in ${CONNECTIONS}`);
    writeFileSync(`${dir}/abort`, '1');
    return `aborted FUSE connection ${m[1]} (${dev})`;
  } finally {
    if (mounted) {
      try {
        execFileSync('umount', [CONNECTIONS], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        // left mounted: harmless
      }
    }
  }
}
