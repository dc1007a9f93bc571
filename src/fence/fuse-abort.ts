/**
 * Aborting the FUSE connection of a share that does not answer: a process killed while its write is in flight to
 * a FUSE server (GlusterFS cut off from its bricks) cannot exit until the server answers, and when the link comes
 * back the write lands, after another node took the volume over. Aborting the connection (fusectl) fails every
 * request in flight at once; what the server had already sent still waits in its TCP connections, so the server
 * is killed and they are closed with it (share-connections.ts). The mount is dead after it (ENOTCONN) until it is
 * mounted again, which ferryd does for a pool with `mount:`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { errorMessage } from '../util/errors.js';
import { closeTcpConnections, fuseServers, holdNetns, processTree, tcpConnectionsOf } from './share-connections.js';

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

function killQuiet(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // exited meanwhile
  }
}

/**
 * Cut this node off a FUSE share for good: abort the connection (every request in flight fails), then close the
 * server process's TCP connections, whose send queues still hold what it had sent (fuse-abort.ts,
 * share-connections.ts). Their addresses are read before the abort: the server exits after it.
 */
export function abortShare(dev: string): { fuseAbort: string; connectionsClosed: string } {
  const servers = fuseServers(dev).flatMap((pid) => {
    try {
      return [{ pid, tree: processTree(pid), ns: holdNetns(pid), conns: tcpConnectionsOf(pid) }];
    } catch {
      return []; // exited meanwhile
    }
  });
  let fuseAbort: string;
  try {
    fuseAbort = abortFuseConnection(dev);
  } catch (err) {
    fuseAbort = `could not abort the FUSE connection ${dev}: ${errorMessage(err)}`;
  }
  if (servers.length === 0) return { fuseAbort, connectionsClosed: `found no server process of FUSE connection ${dev}: its TCP connections, if any, are left open` };
  // the server of an aborted connection exits by itself; killed, it cannot reconnect and send more meanwhile
  for (const s of servers) for (const p of s.tree) killQuiet(p);
  const done: string[] = [];
  for (const s of servers) {
    try {
      const n = closeTcpConnections(s.ns, s.conns);
      const queued = s.conns.reduce((a, c) => a + c.sendQueue, 0);
      done.push(`killed its server and closed ${n} TCP connection(s) of it (pid ${s.pid}${s.conns.length ? `, to ${[...new Set(s.conns.map((c) => c.remote))].join(' ')}` : ''}), discarding ${queued} queued byte(s)`);
    } catch (err) {
      done.push(`could not close the TCP connections of its server (pid ${s.pid}): ${errorMessage(err)}`);
    } finally {
      s.ns.close();
    }
  }
  return { fuseAbort, connectionsClosed: done.join('; ') };
}
