/**
 * The invariants a soak run (tools/soak-driver.ts) checks at its end, against the user's own record of
 * what happened (the Model): every check reads the system only through what a user or operator has —
 * containers started with the `docker` CLI, the `ferry` CLI, and the files on each host.
 *
 * - data: every live volume's files, read back by a container, match the checksum log (what was written
 *   last is what is read); files whose last write failed (ferryd or dockerd killed under it) are allowed
 *   any content, but no file may appear that nobody wrote;
 * - docker volume ls: on every host, exactly the live volumes it should see (shared ones everywhere,
 *   local ones on their own host only);
 * - catalog vs directories: `ferry volume ls` lists each pool's volume directories, no more, no less,
 *   and the trash records match the trash directories (no orphans either way);
 * - refcounts: each host's ferryd counts, per volume, as many mounts as its Docker runs containers using
 *   the volume (given time to reconcile after the faults);
 * - no orphan mounts: nothing is mounted under a host's pools except the share itself;
 * - trash and snapshots: `ferry trash ls` holds exactly the removed volumes not undeleted, and each
 *   volume's snapshots are those the user took (none lost, none invented).
 */
import type { ClusterHost } from '../test/helpers/cluster.js';

/** name -> sha256 of the content last written (undefined: the last write failed, any content is fine). */
export type Files = Map<string, string | undefined>;

export interface ModelVolume {
  name: string;
  /** 'local' (on `home` only) or the shared pool. */
  pool: string;
  home: string;
  shared: boolean;
  state: 'live' | 'trash' | 'unknown';
  /** The host whose ferryd holds the trash record (undelete works there only, docs/shared-pools.md). */
  removedOn?: string;
  files: Files;
  /** Another content the volume may rightly have (a restore whose answer was lost: before or after). */
  alt?: Files;
  snapshots: Map<string, Files>;
  /** A snapshot whose creation failed: it may or may not exist. */
  maybeSnapshots: Set<string>;
}

export interface Model {
  volumes: Map<string, ModelVolume>;
  sharedPool: string;
  /**
   * Names whose create/clone/restore failed because its ferryd was killed in the middle: in a shared pool
   * that leaves a directory without a record (ferryd never adopts those there: another node may be
   * creating). Reported as leftovers, not violations.
   */
  failedCreates: Set<string>;
  leftovers: string[];
}

export interface Violation {
  invariant: string;
  detail: string;
}

interface Ctx {
  hosts: ClusterHost[];
  model: Model;
  /** A docker call, timed by the driver. */
  docker: (h: ClusterHost, args: string[], timeoutMs?: number) => Promise<{ code: number; stdout: string; stderr: string }>;
  /** A ferry CLI call on h, timed by the driver. */
  ferry: (h: ClusterHost, args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;
  log: (s: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Reads a volume's files back through a container on h: name -> sha256. */
export async function readVolume(c: Pick<Ctx, 'docker'>, h: ClusterHost, vol: string): Promise<Map<string, string> | string> {
  const r = await c.docker(h, ['run', '--rm', '--network', 'none', '-v', `${vol}:/d:ro`, 'bb', 'sh', '-c', 'cd /d && for f in *; do [ -f "$f" ] && sha256sum "$f"; done; exit 0'], 120_000);
  if (r.code !== 0) return `docker run on ${h.name} failed (${r.code}): ${r.stderr.trim().slice(0, 300)}`;
  const m = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const x = /^([0-9a-f]{64})\s+(.+)$/.exec(line.trim());
    if (x) m.set(x[2]!, x[1]!);
  }
  return m;
}

/** Differences between what was read and a checksum log; empty when they agree. */
export function compareFiles(read: Map<string, string>, expected: Files): string[] {
  const diffs: string[] = [];
  for (const [f, sum] of expected) {
    if (sum === undefined) continue; // last write failed: anything (or nothing) is right
    const got = read.get(f);
    if (got === undefined) diffs.push(`${f} missing`);
    else if (got !== sum) diffs.push(`${f} has ${got.slice(0, 12)}, last written ${sum.slice(0, 12)}`);
  }
  for (const f of read.keys()) if (!expected.has(f)) diffs.push(`${f} present but never written (or written before a restore that dropped it)`);
  return diffs;
}

async function json<T>(c: Ctx, h: ClusterHost, args: string[]): Promise<T | string> {
  const r = await c.ferry(h, ['--json', ...args]);
  if (r.code !== 0) return `ferry ${args.join(' ')} on ${h.name}: ${r.stderr.trim().slice(0, 300)}`;
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    return `ferry ${args.join(' ')} on ${h.name}: not JSON: ${r.stdout.slice(0, 200)}`;
  }
}

interface VolJson { name: string; pool: string; mounts: number; mountpoint: string; shared: boolean }
interface TrashJson { id: string; name: string; pool: string }

/** Runs every check; returns the violations (empty: all hold). */
export async function checkInvariants(c: Ctx): Promise<Violation[]> {
  const out: Violation[] = [];
  const v = (invariant: string, detail: string) => {
    out.push({ invariant, detail });
    c.log(`VIOLATION ${invariant}: ${detail}`);
  };
  const { model, hosts } = c;
  const live = [...model.volumes.values()].filter((x) => x.state === 'live');
  const hostOf = (name: string) => hosts.find((h) => h.name === name)!;

  // 1. data matches the checksum log (read on the volume's home; shared volumes also on another host)
  for (const vol of live) {
    const readers = vol.shared ? [hostOf(vol.home), hosts.find((h) => h.name !== vol.home)!] : [hostOf(vol.home)];
    for (const h of readers) {
      let read = await readVolume(c, h, vol.name);
      // an rwo volume a container the user still runs holds on another host: the refusal is right; read it there
      const holder = typeof read === 'string' ? /is rwo \(one host at a time\) and node (\S+) holds it/.exec(read)?.[1] : undefined;
      if (holder && holder !== h.name && hosts.some((x) => x.name === holder)) {
        if (readers.some((x) => x.name === holder)) continue;
        read = await readVolume(c, hostOf(holder), vol.name);
      }
      if (typeof read === 'string') {
        v('data', `${vol.name}: cannot read: ${read}`);
        continue;
      }
      const d = compareFiles(read, vol.files);
      if (d.length && vol.alt && compareFiles(read, vol.alt).length === 0) continue;
      if (d.length) v('data', `${vol.name} read on ${h.name}: ${d.join('; ')}`);
    }
  }

  // 2. docker volume ls on every host; no volume of another driver under a ferry volume's name (a `docker run -v`
  // would mount either: src/docker/shadows.ts)
  for (const h of hosts) {
    const r = await c.docker(h, ['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'], 120_000);
    if (r.code !== 0) {
      v('docker-volume-ls', `${h.name}: ${r.stderr.trim()}`);
      continue;
    }
    const listed = r.stdout.split('\n').map((l) => l.trim().split(' ')).filter((x) => x.length === 2) as Array<[string, string]>;
    for (const [driver, n] of listed) if (driver !== 'ferry' && model.volumes.has(n)) v('docker-name', `${h.name}: Docker has a ${driver} volume ${n} beside ferry's`);
    const seen = new Set(listed.filter(([driver]) => driver === 'ferry').map(([, n]) => n));
    const want = new Set(live.filter((x) => x.shared || x.home === h.name).map((x) => x.name));
    for (const n of want) if (!seen.has(n)) v('docker-volume-ls', `${h.name}: ${n} is live but docker volume ls does not list it`);
    for (const n of seen) if (!want.has(n) && model.volumes.has(n)) v('docker-volume-ls', `${h.name}: lists ${n} (${model.volumes.get(n)!.state}${model.volumes.get(n)!.home !== h.name ? `, of ${model.volumes.get(n)!.home}` : ''})`);
  }

  // 3. catalog vs model vs directories; trash (a shared pool's trash records are on the removing nodes)
  const allTrash = new Map<string, TrashJson[]>();
  const allVols = new Map<string, VolJson[]>();
  for (const h of hosts) {
    const vols = await json<VolJson[]>(c, h, ['volume', 'ls']);
    const trash = await json<TrashJson[]>(c, h, ['trash', 'ls']);
    if (typeof vols === 'string') { v('catalog', vols); continue; }
    if (typeof trash === 'string') { v('trash', trash); continue; }
    allTrash.set(h.name, trash);
    allVols.set(h.name, vols);
  }
  for (const h of hosts) {
    const vols = allVols.get(h.name);
    const trash = allTrash.get(h.name);
    if (!vols || !trash) continue;
    const names = new Set(vols.map((x) => x.name));
    const want = live.filter((x) => x.shared || x.home === h.name);
    for (const x of want) if (!names.has(x.name)) v('catalog', `${h.name}: ferry volume ls lacks live volume ${x.name}`);
    for (const n of names) {
      const m = model.volumes.get(n);
      if (m && m.state !== 'live') v('catalog', `${h.name}: ferry volume ls lists ${n}, which the user removed`);
    }
    // directories of each pool = catalog records
    const pools = new Map<string, string>(); // pool -> its volumes dir
    for (const x of vols) pools.set(x.pool, x.mountpoint.replace(/\/[^/]+\/data$/, ''));
    for (const [pool, dir] of pools) {
      const shared = vols.some((x) => x.pool === pool && x.shared);
      const ls = await h.exec('ls', ['-1', dir]);
      const dirs = new Set(ls.stdout.split('\n').filter((s) => s && !s.startsWith('.')));
      const recs = new Set(vols.filter((x) => x.pool === pool).map((x) => x.name));
      for (const d of dirs) {
        if (recs.has(d)) continue;
        if (model.failedCreates.has(d)) {
          if (!model.leftovers.some((l) => l.startsWith(`${dir}/${d} `))) model.leftovers.push(`${dir}/${d} (a create of ${d} that failed when its ferryd was killed)`);
        } else v('catalog', `${h.name}: ${dir}/${d} has no record in pool ${pool}`);
      }
      for (const r of recs) if (!dirs.has(r)) v('catalog', `${h.name}: volume ${r} has a record but no directory in ${dir}`);
      const tls = await h.exec('ls', ['-1', dir.replace(/\/volumes$/, '/trash')]);
      const tdirs = new Set(tls.stdout.split('\n').filter((s) => s && !s.startsWith('.')));
      const trecs = (shared ? [...allTrash.values()].flat() : trash).filter((t) => t.pool === pool);
      for (const t of trecs) if (!tdirs.has(t.id)) v('trash', `${h.name}: trash record ${t.id} (${t.name}) has no directory`);
      for (const d of tdirs) if (!trecs.some((t) => t.id === d)) v('trash', `${h.name}: trash directory ${d} in pool ${pool} has no record on any node`);
    }
    const inTrash = new Set(trash.map((t) => t.name));
    for (const x of model.volumes.values()) {
      if (x.state === 'trash' && x.removedOn === h.name && !inTrash.has(x.name)) v('trash', `${h.name}: ${x.name} was removed here but is not in its ferry trash ls`);
    }
  }

  // 4. refcounts = containers Docker runs (ferryd reconciles after restarts: give it time, then judge)
  for (const h of hosts) {
    let last: string[] = [];
    for (let i = 0; i < 60; i++) {
      last = [];
      const ps = await c.docker(h, ['ps', '-q'], 60_000);
      const ids = ps.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      const running = new Map<string, number>();
      if (ids.length) {
        const insp = await c.docker(h, ['inspect', '--format', '{{range .Mounts}}{{if eq .Driver "ferry"}}{{.Name}} {{end}}{{end}}', ...ids], 60_000);
        for (const line of insp.stdout.split('\n')) for (const n of line.trim().split(/\s+/).filter(Boolean)) running.set(n, (running.get(n) ?? 0) + 1);
      }
      const vols = await json<VolJson[]>(c, h, ['volume', 'ls']);
      if (typeof vols === 'string') { last.push(vols); await sleep(1000); continue; }
      for (const x of vols) {
        const want = running.get(x.name) ?? 0;
        // ferryd counts Docker's mounts: one per container (Docker's own extra Mount/Unmount pairs balance)
        if ((x.mounts > 0) !== (want > 0) || x.mounts < want) last.push(`${h.name}: ${x.name} has ${x.mounts} mount(s), Docker runs ${want} container(s) with it`);
      }
      if (last.length === 0) break;
      await sleep(1000);
    }
    for (const l of last) v('refcount', l);
  }

  // 5. no orphan mounts: under each host's pools, only the share itself may be mounted
  for (const h of hosts) {
    const mi = await h.exec('cat', ['/proc/self/mountinfo']);
    const vols = await json<VolJson[]>(c, h, ['volume', 'ls']);
    if (typeof vols === 'string') continue;
    const roots = new Set(vols.map((x) => x.mountpoint.replace(/\/volumes\/[^/]+\/data$/, '')));
    for (const line of mi.stdout.split('\n')) {
      const mp = line.split(' ')[4];
      if (!mp) continue;
      for (const r of roots) if (mp.startsWith(r + '/')) v('orphan-mount', `${h.name}: ${mp} is mounted under pool root ${r}`);
    }
  }

  // 6. snapshots: those the user took, no more, no less
  for (const vol of live) {
    const h = hostOf(vol.home);
    const snaps = await json<Array<{ name: string }>>(c, h, ['snapshot', 'ls', vol.name]);
    if (typeof snaps === 'string') { v('snapshots', snaps); continue; }
    const got = new Set(snaps.map((s) => s.name));
    for (const s of vol.snapshots.keys()) if (!got.has(s)) v('snapshots', `${vol.name}: snapshot ${s} is gone`);
    for (const s of got) if (!vol.snapshots.has(s) && !vol.maybeSnapshots.has(s) && !s.startsWith('backup-') && !/^\d{4}-/.test(s)) v('snapshots', `${vol.name}: snapshot ${s} nobody took`);
  }
  return out;
}
