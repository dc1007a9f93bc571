/**
 * The TCP connections of a FUSE share's server process, and closing them at once. Aborting the FUSE connection
 * (fuse-abort.ts) fails the requests a writer waits for, but what the server process (glusterfs) had already
 * sent sits in its sockets' send queues: with the link down the kernel keeps it, and it is delivered when the
 * link comes back, even after the process exited (an orphaned socket still sends). Measured with GlusterFS:
 * the write a killed writer's close flushed landed after the other node had taken the volume over. Closing
 * those connections locally (`ss -K`, sock_diag destroy) discards their queues; nothing is sent.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseMountinfo } from './mountinfo.js';

export interface TcpConnection {
  local: string;
  remote: string;
  /** Bytes sent and not acknowledged, or not sent yet (tx_queue of /proc/net/tcp). */
  sendQueue: number;
  /** Retransmission timeouts and window probes since the peer last answered: > 0 when it has stopped answering. */
  retries: number;
  /** An orphaned socket (closed by its process, inode 0) to one of the process's peers. */
  orphan?: boolean;
}

/** "0100007F:0050" (IPv4) or 32 hex digits + port (IPv6), as in /proc/net/tcp{,6}, to "127.0.0.1:80" / "[::1]:80". */
export function decodeAddress(hex: string): string {
  const [addr, port] = hex.split(':') as [string, string];
  const p = parseInt(port, 16);
  if (addr.length === 8) return `${[3, 2, 1, 0].map((i) => parseInt(addr.slice(i * 2, i * 2 + 2), 16)).join('.')}:${p}`;
  // IPv6: four 32-bit words, each in the host's (little-endian) byte order; URL writes the canonical short form
  const groups: string[] = [];
  for (let w = 0; w < 4; w++) {
    const word = [3, 2, 1, 0].map((i) => addr.slice(w * 8 + i * 2, w * 8 + i * 2 + 2)).join('');
    groups.push(word.slice(0, 4), word.slice(4));
  }
  return `${new URL(`http://[${groups.join(':')}]/`).hostname}:${p}`;
}

const LISTEN = '0A';
/** States in which a connection can hold data to send (not SYN_SENT/SYN_RECV, whose queue is the SYN). */
const DATA_STATES = new Set(['01', '04', '08', '09', '0B']); // ESTABLISHED FIN_WAIT1 CLOSE_WAIT LAST_ACK CLOSING
/** The inode of an orphaned socket: its process closed it, the kernel still sends what it queued. */
const ORPHAN = '0';
/** States of an orphan that still has something to send: FIN_WAIT1 CLOSING LAST_ACK (inode 0 in another state
 * is a kernel socket, e.g. an NFS client's, and not ours). */
const ORPHAN_STATES = new Set(['04', '0B', '09']);

/**
 * The TCP connections in a /proc/net/tcp{,6} text whose socket inode is in `inodes` (not listening sockets),
 * and the orphaned ones (inode 0, closing with data unsent) whose remote `orphansTo` accepts.
 */
export function parseTcpTable(text: string, inodes: Set<string>, orphansTo?: (remote: string) => boolean): TcpConnection[] {
  const out: TcpConnection[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] === LISTEN) continue;
    const remote = decodeAddress(f[2]!);
    const orphan = f[9] === ORPHAN && ORPHAN_STATES.has(f[3]!) && orphansTo?.(remote) === true;
    if (!inodes.has(f[9]!) && !orphan) continue;
    // columns: sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid probes_out inode ...
    const retries = parseInt(f[6]!, 16) + Number(f[8]);
    const sendQueue = DATA_STATES.has(f[3]!) ? parseInt(f[4]!.split(':')[0]!, 16) : 0;
    out.push({ local: decodeAddress(f[1]!), remote, sendQueue, retries, ...(orphan ? { orphan } : {}) });
  }
  return out;
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** `pid` and its descendants (an sshfs mount's connection is held by its ssh child, not by sshfs). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${out[i]}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) out.push(Number(c));
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

/**
 * The TCP connections process `pid` and its descendants hold, read from `pid`'s network namespace's tables, and
 * the orphaned sockets there to the same hosts: a connection the client closed (GlusterFS does at its ping
 * timeout, and reconnects) still sends its queue from the kernel.
 */
export function tcpConnectionsOf(pid: number): TcpConnection[] {
  const inodes = new Set(processTree(pid).flatMap((p) => [...socketInodes(p)]));
  if (inodes.size === 0) return [];
  const tables = ['tcp', 'tcp6'].map((t) => {
    try {
      return readFileSync(`/proc/${pid}/net/${t}`, 'utf8');
    } catch {
      return '';
    }
  });
  const own = tables.flatMap((t) => parseTcpTable(t, inodes));
  const hosts = new Set(own.map((c) => hostOf(c.remote)));
  return [...own, ...tables.flatMap((t) => parseTcpTable(t, new Set(), (remote) => hosts.has(hostOf(remote))))];
}

const hostOf = (address: string) => address.slice(0, address.lastIndexOf(':'));

/**
 * The processes serving FUSE connection `dev` ("0:NN"): those holding /dev/fuse open whose own mount namespace
 * has `dev` mounted at a path named in their command line (glusterfs, sshfs and other libfuse servers are given
 * their mount point). The kernel does not say which /dev/fuse descriptor serves which connection.
 */
export function fuseServers(dev: string): number[] {
  const named: number[] = [];
  const seeing: number[] = []; // holders of /dev/fuse whose mount namespace has dev, named or not
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const fds = readdirSync(`/proc/${name}/fd`);
      if (!fds.some((fd) => safeReadlink(`/proc/${name}/fd/${fd}`) === '/dev/fuse')) continue;
      const mounts = parseMountinfo(readFileSync(`/proc/${name}/mountinfo`, 'utf8')).filter((m) => m.dev === dev);
      if (mounts.length === 0) continue;
      seeing.push(Number(name));
      // (an argument written with a trailing slash or dots names the same directory)
      const args = new Set(readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter((a) => a.startsWith('/')).map((a) => resolve(a)));
      if (mounts.some((m) => args.has(m.mountPoint))) named.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  // none names its mount point: the only process that can be its server, if there is only one
  return named.length > 0 ? named : seeing.length === 1 ? seeing : [];
}

/**
 * What the server processes of FUSE connection `dev` have sent that the share does not acknowledge: bytes
 * queued on connections whose peer has let a retransmission or window probe go unanswered. A writer that was
 * not stuck at its kill (its write accepted by the client's write-behind, its close answered by flush-behind)
 * can still have a write there, which lands when the share answers again. Undefined when there is none.
 */
export function unansweredBytes(dev: string): { bytes: number; peers: string[] } | undefined {
  const waiting = fuseServers(dev).flatMap((pid) => tcpConnectionsOf(pid)).filter((c) => c.sendQueue > 0 && c.retries > 0);
  if (waiting.length === 0) return undefined;
  return { bytes: waiting.reduce((a, c) => a + c.sendQueue, 0), peers: [...new Set(waiting.map((c) => c.remote))] };
}

function safeReadlink(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

/** A hold on a process's network namespace: it stays usable after the process exits. */
export interface NetnsHold {
  fd: number;
  /** True when it is this process's own namespace (no nsenter needed). */
  own: boolean;
  close(): void;
}

export function holdNetns(pid: number): NetnsHold {
  const fd = openSync(`/proc/${pid}/ns/net`, 'r');
  const own = fstatSync(fd).ino === statSync('/proc/self/ns/net').ino;
  return { fd, own, close: () => closeSync(fd) };
}

const ssFilter = (c: TcpConnection) => ['src', c.local, 'and', 'dst', c.remote];

function ss(ns: NetnsHold, args: string[]): string {
  const cmd = ns.own ? ['ss', ...args] : ['nsenter', '--net=/proc/self/fd/3', 'ss', ...args];
  return execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe', ns.fd] });
}

/**
 * Close `conns` in the network namespace held by `ns`, whatever their state (an orphaned socket of an exited
 * process included), discarding what they had queued. Returns how many are gone; throws if one is still
 * there (a kernel without CONFIG_INET_DIAG_DESTROY, or ss missing).
 */
export function closeTcpConnections(ns: NetnsHold, conns: TcpConnection[]): number {
  let closed = 0;
  for (const c of conns) {
    ss(ns, ['-K', '-H', '-t', '-n', 'state', 'all', ...ssFilter(c)]);
    const left = ss(ns, ['-H', '-t', '-n', 'state', 'all', 'exclude', 'time-wait', ...ssFilter(c)]).trim();
    if (left) throw new Error(`the connection ${c.local} -> ${c.remote} is still open after ss -K (a kernel without CONFIG_INET_DIAG_DESTROY?)`);
    closed++;
  }
  return closed;
}
