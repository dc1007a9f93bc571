/** What tests start outside Node's reach, found and removed: processes, mounts, cgroups and namespaces. */
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** kill(2) that ignores a process already gone, and never signals -1, 0 or init. */
export function killQuiet(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** True while the process exists (a zombie counts). */
export const isAlive = (pid: number | undefined) => pid !== undefined && pid > 1 && existsSync(`/proc/${pid}`);

/** Mount points (root namespace view) at or under dir, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points: string[] = [];
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const p = mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(dir + '/')) points.push(p);
  }
  return points.sort((a, b) => b.length - a.length);
}

/** pids whose mount or network namespace is one of `ns` (e.g. 'mnt:[4026532]'). */
export async function pidsInNamespaces(ns: Set<string>): Promise<number[]> {
  if (ns.size === 0) return [];
  const pids: number[] = [];
  for (const ent of await readdir('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const pid = Number(ent);
    if (pid === process.pid) continue;
    for (const kind of ['mnt', 'net']) {
      try {
        if (ns.has(await readlink(`/proc/${pid}/ns/${kind}`))) {
          pids.push(pid);
          break;
        }
      } catch {
        break; // process gone or kernel thread
      }
    }
  }
  return pids;
}

/** State, comm and start time (clock ticks after boot) from /proc/PID/stat; undefined if gone. */
export async function procStat(pid: number): Promise<{ state: string; comm: string; start: number } | undefined> {
  try {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    const close = st.lastIndexOf(')');
    const comm = st.slice(st.indexOf('(') + 1, close);
    const f = st.slice(close + 2).split(' '); // f[0] is field 3 (state)
    return { state: f[0]!, comm, start: Number(f[19]) };
  } catch {
    return undefined;
  }
}

/** The cgroup hierarchies: the v2 root and each v1 controller's. */
async function cgroupRoots(): Promise<string[]> {
  const roots = ['/sys/fs/cgroup'];
  try {
    for (const e of await readdir('/sys/fs/cgroup', { withFileTypes: true })) if (e.isDirectory()) roots.push(join('/sys/fs/cgroup', e.name));
  } catch {
    return [];
  }
  return roots;
}

/** A cgroup directory and its descendants, children before their parents (the order rmdir needs). */
async function cgroupTree(d: string, found: string[]): Promise<void> {
  let ents;
  try {
    ents = await readdir(d, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of ents) if (e.isDirectory()) await cgroupTree(join(d, e.name), found);
  found.push(d);
}

/** Every cgroup directory named `parent` in any hierarchy (v1 controllers and v2), with its descendants, deepest first. */
export async function cgroupDirs(parent: string): Promise<string[]> {
  const found: string[] = [];
  for (const r of await cgroupRoots()) {
    const d = join(r, parent);
    if (existsSync(join(d, 'cgroup.procs'))) await cgroupTree(d, found);
  }
  return found;
}

/** cgroup directories (any hierarchy, top level) whose name starts with prefix, with descendants, deepest first. */
export async function cgroupsWithPrefix(prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const r of await cgroupRoots()) {
    let ents;
    try {
      ents = await readdir(r, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of ents) if (e.isDirectory() && e.name.startsWith(prefix) && existsSync(join(r, e.name, 'cgroup.procs'))) await cgroupTree(join(r, e.name), found);
  }
  return found;
}

/** pids in these cgroup directories (not this process). */
export async function pidsInCgroups(dirs: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of (await readFile(join(d, 'cgroup.procs'), 'utf8')).split('\n')) if (l.trim()) pids.add(Number(l));
    } catch {
      /* removed meanwhile */
    }
  }
  pids.delete(process.pid);
  return [...pids];
}
