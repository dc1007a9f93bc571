/**
 * Find and stop the processes that can write a volume: those whose mount namespace has the volume's
 * directory (or a directory inside it) mounted, found from the kernel's views (/proc/PID/mountinfo and
 * /proc/PID/cgroup). Needs neither dockerd nor ferryd nor the share (nothing on it is read).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { parseMountinfo, readMountinfo, type MountLine } from './mountinfo.js';

export interface Writer {
  pid: number;
  /** The process's cgroup (v2 path), when it has one of its own. */
  cgroup?: string;
  mountPoint: string;
  /** The type of the filesystem the volume is mounted from (fuse.glusterfs, nfs4, ...). */
  fstype?: string;
}

export interface Target {
  dev: string;
  fsRoot: string;
}

/**
 * Processes, other than in this process's own mount namespace, that have one of the targets mounted;
 * with `cgroupPrefix`, only those whose cgroup (v2) is under it (e.g. Docker's cgroup parent).
 */
export function findWriters(targets: Target[], cgroupPrefix?: string): Writer[] {
  if (targets.length === 0) return [];
  const ownNs = safeReadlink('/proc/self/ns/mnt');
  const seenNs = new Map<string, MountLine | undefined>(); // mount namespace -> matching mount (or none)
  const out: Writer[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const ns = safeReadlink(`/proc/${pid}/ns/mnt`);
    if (!ns || ns === ownNs) continue;
    let hit = seenNs.get(ns);
    if (!seenNs.has(ns)) {
      const text = readMountinfo(pid);
      hit = text === undefined ? undefined : parseMountinfo(text).find((m) => targets.some((t) => m.dev === t.dev && (m.root === t.fsRoot || m.root.startsWith(t.fsRoot + '/'))));
      seenNs.set(ns, hit);
    }
    if (hit === undefined) continue;
    const cg = cgroupOf(pid);
    if (cgroupPrefix && !(cg === cgroupPrefix || cg?.startsWith(cgroupPrefix.replace(/\/$/, '') + '/'))) continue;
    out.push({ pid, mountPoint: hit.mountPoint, ...(hit.fstype ? { fstype: hit.fstype } : {}), ...(cg ? { cgroup: cg } : {}) });
  }
  return out;
}

function onlyWriters(dir: string, pids: Set<number>): boolean {
  try {
    const procs = readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
    return procs.length > 0 && procs.every((p) => pids.has(p));
  } catch {
    return false;
  }
}

function safeReadlink(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

/** The cgroup v2 path of a process ("0::/path"), undefined without cgroup v2. */
export function cgroupOf(pid: number | 'self'): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line?.slice(3) || undefined;
  } catch {
    return undefined;
  }
}

export interface KillReport {
  pids: number[];
  cgroups: string[];
}

/**
 * Kill the writers: the whole cgroup of each (cgroup.kill, cgroup v2: a container's every process at once,
 * none can fork away), or SIGKILL the process itself when its cgroup holds this agent too (or cannot be killed).
 */
export function killWriters(writers: Writer[], cgroupRoot = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified'): KillReport {
  const own = cgroupOf('self');
  const report: KillReport = { pids: [], cgroups: [] };
  const done = new Set<string>();
  const pids = new Set(writers.map((w) => w.pid));
  for (const w of writers) {
    const cg = w.cgroup;
    // the whole cgroup only when every process in it is a writer (a container's); never a shared session cgroup
    const ours = !cg || cg === '/' || (own !== undefined && (own === cg || own.startsWith(cg + '/'))) || !onlyWriters(`${cgroupRoot}${cg}`, pids);
    if (!ours && cg) {
      if (!done.has(cg)) {
        try {
          writeFileSync(`${cgroupRoot}${cg}/cgroup.kill`, '1');
          done.add(cg);
          report.cgroups.push(cg);
        } catch {
          // no cgroup.kill (kernel < 5.14) or not visible here: kill the process
        }
      }
      if (done.has(cg)) {
        report.pids.push(w.pid);
        continue;
      }
    }
    try {
      process.kill(w.pid, 'SIGKILL');
      report.pids.push(w.pid);
    } catch {
      // gone already
    }
  }
  return report;
}
