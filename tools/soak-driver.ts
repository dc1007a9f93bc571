/**
 * The soak: three simulated Docker hosts (test/helpers/cluster.ts) on one GlusterFS pool plus each host's
 * local pool, a seeded random stream of what users do (create, write-and-checksum, read back, containers
 * that keep a volume mounted, unmount, snapshot, restore, clone, rm, undelete, backup, restore from backup),
 * all through the real `docker` CLI and `ferry` CLI, while ferryds are killed -9 and dockerds restarted.
 * At the end the invariants of soak-invariants.ts are checked. The same seed gives the same choices (the
 * faults' timing and what fails under them differ between runs, so a replay is close, not identical).
 * Used by tools/soak.ts (`npm run soak`) and test/e2e/soak.test.ts.
 */
import { mkdir, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterHost } from '../test/helpers/cluster.js';
import { startGluster } from '../test/helpers/gluster.js';
import { checkInvariants, compareFiles, readVolume, type Files, type Model, type Violation } from './soak-invariants.js';

export interface SoakOptions {
  minutes: number;
  seed?: number;
  /** Mean seconds between faults (default 60 for runs of 10 minutes or more, else 40). */
  faultEverySec?: number;
  log?: (s: string) => void;
  /** Where the cluster dir goes (default /tmp). */
  parentDir?: string;
}

export interface SoakSummary {
  seed: number;
  durationMs: number;
  ops: Record<string, { ok: number; failed: number; refused: number }>;
  faults: Record<string, number>;
  violations: Violation[];
  longestDockerMs: number;
  longestDockerCall: string;
  dockerCalls: number;
  volumes: { live: number; trash: number };
  /** Left behind by operations that failed under a fault, not a violation (see Model.failedCreates). */
  leftovers: string[];
  logFile: string;
  /** Reads taken again after the share's cache window: another host had just rewritten a file the read saw old. */
  rereads?: number;
}

/** How long a GlusterFS client may answer with a file's old pages after another host rewrote it (1 s attribute cache, and margin). */
const SHARE_CACHE_MS = 2500;

/** mulberry32: small, seedable, good enough to choose operations. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
type R = { code: number; stdout: string; stderr: string };

/** Errors a user sees while a ferryd or dockerd is down or restarting: expected during faults. */
const FAULTY = /connection refused|no such file or directory.*sock|Cannot connect to the Docker daemon|EOF|plugin not found|error looking up volume plugin|volume name must be unique|ECONNREFUSED|ENOENT|timed out|killed after|context deadline|is down|not running|connection reset|broken pipe|transport is closing|ferryd did not answer|socket hang up/i;
/** Refusals of state a user gets and must get: in use, rwo held elsewhere, no containers to restart... */
const REFUSED = /in use|holds it|rwo|is used by|refused|containers use it|being used/i;

export async function runSoak(o: SoakOptions): Promise<SoakSummary> {
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)]!;
  const t0 = Date.now();
  const end = t0 + o.minutes * 60_000;
  const faultEvery = (o.faultEverySec ?? (o.minutes >= 10 ? 60 : 40)) * 1000;
  const summary: SoakSummary = { seed, durationMs: 0, ops: {}, faults: {}, violations: [], longestDockerMs: 0, longestDockerCall: '', dockerCalls: 0, volumes: { live: 0, trash: 0 }, leftovers: [], logFile: '' };
  let c: Cluster | undefined;
  const logDir = o.parentDir ?? '/tmp';
  const logFile = join(logDir, `ferry-soak-${seed}.log`);
  summary.logFile = logFile;
  await writeFile(logFile, '');
  const log = (s: string) => {
    const line = `[soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`;
    o.log?.(line);
    void appendFile(logFile, line + '\n').catch(() => undefined);
  };
  log(`seed ${seed} (replay: --seed ${seed}), ${o.minutes} min, a fault every ~${faultEvery / 1000} s`);
  try {
    c = await startCluster({ hosts: 3, name: 'soak', ...(o.parentDir ? { parentDir: o.parentDir } : {}) });
    const g = await startGluster(c);
    const backups = join(c.dir, 'backups');
    await mkdir(backups, { recursive: true });
    const keyFile = join(c.dir, 'backup.key');
    await writeFile(keyFile, `soak-${seed}\n`, { mode: 0o600 });
    const config = (h: ClusterHost) =>
      [
        `node: ${h.name}`,
        'heartbeatInterval: 500ms',
        'nodeTimeout: 4s',
        'defaultPool: nas',
        'pools:',
        '  nas:',
        `    path: ${join(c!.dir, 'nas')}`,
        '    shared: true',
        '    mount:',
        '      type: glusterfs',
        `      device: "${g.device}"`,
        'backupTargets:',
        '  soak:',
        `    url: file://${backups}`,
        `    passwordFile: ${keyFile}`,
      ].join('\n');
    await Promise.all(c.hosts.map((h) => h.startFerryd({ configYaml: config(h), logLevel: 'info' })));
    const hosts = c.hosts;
    for (const h of hosts) await h.dockerOk(['volume', 'ls', '-q'], { timeoutMs: 60_000 });
    log(`cluster ${c.id}: ${hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}, GlusterFS ${g.device}; log ${logFile}`);

    const docker = async (h: ClusterHost, args: string[], timeoutMs = 120_000): Promise<R> => {
      const s = Date.now();
      let r: R;
      try {
        r = await h.docker(args, { timeoutMs });
      } catch (e) {
        r = { code: -1, stdout: '', stderr: String(e) };
      }
      const ms = Date.now() - s;
      summary.dockerCalls++;
      if (ms > summary.longestDockerMs) {
        summary.longestDockerMs = ms;
        summary.longestDockerCall = `${h.name}: docker ${args.slice(0, 6).join(' ')}`;
      }
      return r;
    };
    const ferry = async (h: ClusterHost, args: string[]): Promise<R> => {
      const f = h.ferryd;
      if (!f) return { code: -1, stdout: '', stderr: 'no ferryd' };
      return f.cli(...args);
    };
    await ferry(hosts[0]!, ['backup', 'init', '--target', 'soak']).then((r) => {
      if (r.code !== 0) throw new Error(`backup init: ${r.stderr}`);
    });

    const model: Model = { volumes: new Map(), sharedPool: 'nas', failedCreates: new Set(), leftovers: [] };
    const containers = new Map<string, { host: string; vol: string }>(); // name -> where
    const busy = new Set<string>(); // volumes an operation is working on
    const lastWrites = new Map<string, Array<{ host: string; at: number }>>(); // volume -> its writes of the last SHARE_CACHE_MS
    const hostGate = new Map<string, Promise<void>>(); // a dockerd restarting: its host's worker waits
    const backupsMade: Array<{ url: string; files: Files }> = [];
    let seq = 0;

    const count = (kind: string, outcome: 'ok' | 'failed' | 'refused') => {
      const k = (summary.ops[kind] ??= { ok: 0, failed: 0, refused: 0 });
      k[outcome]++;
    };
    const outcome = (r: R): 'ok' | 'failed' | 'refused' => (r.code === 0 ? 'ok' : REFUSED.test(r.stderr) && !FAULTY.test(r.stderr) ? 'refused' : 'failed');
    /** A failure that is neither a refusal nor explained by a fault: logged, and an invariant later judges it. */
    const note = (kind: string, h: ClusterHost, r: R) => {
      const out = outcome(r);
      count(kind, out);
      const lines = r.stderr.trim().split('\n');
      if (out !== 'ok') log(`${kind} on ${h.name}: ${out}: ${(lines.find((l) => /error|ferry:/i.test(l)) ?? lines.slice(-1)[0])?.slice(0, 300)}`);
      return out;
    };
    const visible = (h: ClusterHost) => [...model.volumes.values()].filter((v) => (v.shared || v.home === h.name) && !busy.has(v.name));
    const cloneFiles = (f: Files): Files => new Map(f);

    /** After an answer was lost: ask (any answering ferryd) whether name is live, removed, or absent. */
    const resolve = async (name: string): Promise<'live' | 'trash' | 'absent' | 'unknown'> => {
      const v = model.volumes.get(name);
      const askers = v && !v.shared ? hosts.filter((h) => h.name === v.home) : hosts;
      let answered = 0;
      let trashed: string | undefined;
      for (const h of askers) {
        const r = await ferry(h, ['--json', 'volume', 'inspect', name]);
        if (r.code === 0) return 'live';
        const t = await ferry(h, ['--json', 'trash', 'ls']);
        if (t.code !== 0 || !/no such volume|not found/i.test(r.stderr)) continue;
        answered++;
        if ((JSON.parse(t.stdout) as Array<{ name: string }>).some((x) => x.name === name)) trashed = h.name;
      }
      if (trashed) {
        if (v) v.removedOn = trashed;
        return 'trash';
      }
      return answered === askers.length ? 'absent' : 'unknown';
    };
    const learn = async (h: ClusterHost, name: string, files: Files): Promise<void> => {
      const r = await ferry(h, ['--json', 'volume', 'inspect', name]);
      const info = r.code === 0 ? (JSON.parse(r.stdout) as { pool: string; shared: boolean }) : undefined;
      const pool = info?.pool ?? 'unknown';
      model.volumes.set(name, { name, pool, home: h.name, shared: info ? info.shared : pool !== 'local', state: info ? 'live' : 'unknown', files, snapshots: new Map(), maybeSnapshots: new Set() });
    };

    const ops: Record<string, { w: number; run: (h: ClusterHost) => Promise<void> }> = {
      create: {
        w: 3,
        run: async (h) => {
          if (model.volumes.size > 40) return;
          const name = `v${++seq}`;
          const local = rand() < 0.35;
          const rwo = !local && rand() < 0.3;
          busy.add(name);
          try {
            const r = await docker(h, ['volume', 'create', '-d', 'ferry', ...(local ? ['-o', 'pool=local'] : []), ...(rwo ? ['-o', 'access=rwo'] : []), name]);
            note('create', h, r);
            await learn(h, name, new Map());
            if (r.code !== 0) {
              if (outcome(r) === 'failed') model.failedCreates.add(name);
              const s = await resolve(name);
              if (s === 'absent') model.volumes.delete(name);
              else model.volumes.get(name)!.state = s === 'live' ? 'live' : 'unknown';
            }
          } finally {
            busy.delete(name);
          }
        },
      },
      write: {
        w: 6,
        run: async (h) => {
          const vs = visible(h).filter((v) => v.state === 'live');
          if (!vs.length) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            const existing = [...v.files.keys()];
            const f = existing.length && rand() < 0.4 ? pick(existing) : `f${++seq}`;
            const kb = 1 + Math.floor(rand() * 256);
            const r = await docker(h, ['run', '--rm', '--network', 'none', '-v', `${v.name}:/d`, 'bb', 'sh', '-c', `dd if=/dev/urandom of=/d/${f} bs=1k count=${kb} 2>/dev/null && sync && sha256sum /d/${f}`]);
            const now = Date.now();
            lastWrites.set(v.name, [...(lastWrites.get(v.name) ?? []).filter((x) => now - x.at < SHARE_CACHE_MS), { host: h.name, at: now }]);
            const out = note('write', h, r);
            const sum = /^([0-9a-f]{64})\s/.exec(r.stdout.trim())?.[1];
            if (out === 'ok' && sum) {
              v.files.set(f, sum);
              v.alt = undefined;
            } else if (out === 'failed') {
              v.files.set(f, undefined); // may or may not have been written
              if (v.alt) v.alt.set(f, undefined);
            }
          } finally {
            busy.delete(v.name);
          }
        },
      },
      read: {
        w: 4,
        run: async (h) => {
          const vs = visible(h).filter((v) => v.state === 'live');
          if (!vs.length) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            let read = await readVolume({ docker }, h, v.name);
            // A file rewritten in place on another host a moment ago may still read as before here: GlusterFS's
            // client keeps its pages until it fetches the file's attributes again (docs/shared-pools.md, measured 20
            // of 20). What the share promises a user is the write after that window: read again once it passed.
            const fromElsewhere = (lastWrites.get(v.name) ?? []).some((x) => x.host !== h.name && Date.now() - x.at < SHARE_CACHE_MS);
            if (typeof read !== 'string' && fromElsewhere && compareFiles(read, v.files).length) {
              await sleep(SHARE_CACHE_MS);
              summary.rereads = (summary.rereads ?? 0) + 1;
              read = await readVolume({ docker }, h, v.name);
            }
            if (typeof read === 'string') {
              count('read', REFUSED.test(read) && !FAULTY.test(read) ? 'refused' : 'failed');
              log(`read ${v.name} on ${h.name}: ${read.slice(0, 240)}`);
              return;
            }
            count('read', 'ok');
            const d = compareFiles(read, v.files);
            if (d.length && v.alt && compareFiles(read, v.alt).length === 0) {
              v.files = v.alt;
              v.alt = undefined;
              return;
            }
            if (d.length) {
              const recent = (lastWrites.get(v.name) ?? []).map((x) => `${x.host} ${((Date.now() - x.at) / 1000).toFixed(1)} s ago`).join(', ');
              // (which drivers Docker on that host has a volume of that name for: another than ferry's is a shadow)
              const drivers = (await docker(h, ['volume', 'ls', '--filter', `name=^${v.name}$`, '--format', '{{.Driver}}'])).stdout.trim().split('\n').join(',');
              const detail = `${v.name} read on ${h.name}: ${d.join('; ')}${recent ? ` (writes of the last ${SHARE_CACHE_MS / 1000} s: ${recent})` : ''}; Docker there has it with driver ${drivers || 'none'}`;
              summary.violations.push({ invariant: 'data (during the run)', detail });
              log(`VIOLATION data: ${detail}`);
              // what is there now is the user's new starting point (do not report the same loss again)
              v.files = new Map(read);
              v.alt = undefined;
            } else {
              // files whose last write failed: now we know what they hold
              for (const [f, s] of read) if (v.files.get(f) === undefined) v.files.set(f, s);
              for (const f of [...v.files.keys()]) if (v.files.get(f) === undefined && !read.has(f)) v.files.delete(f);
            }
          } finally {
            busy.delete(v.name);
          }
        },
      },
      attach: {
        w: 3,
        run: async (h) => {
          if ([...containers.values()].filter((x) => x.host === h.name).length >= 4) return;
          const vs = visible(h).filter((v) => v.state === 'live');
          if (!vs.length) return;
          const v = pick(vs);
          const name = `c${++seq}`;
          // busy until the container counts as using it: an rm of the volume on another host meanwhile (ferryd here
          // down for a few seconds, Docker retrying) would make Docker's plain `-v NAME` create a local volume NAME,
          // as it does for any name no driver has, which is Docker's rule, not a fault of ferry's
          busy.add(v.name);
          try {
            const r = await docker(h, ['run', '-d', '--name', name, '--network', 'none', '-v', `${v.name}:/d`, 'bb', 'sleep', '100000']);
            note('attach', h, r);
            // even a failed run may have left a container (created, not started): detach removes it
            containers.set(name, { host: h.name, vol: v.name });
          } finally {
            busy.delete(v.name);
          }
        },
      },
      detach: {
        w: 3,
        run: async (h) => {
          const mine = [...containers].filter(([, x]) => x.host === h.name);
          if (!mine.length) return;
          const [name] = pick(mine);
          const r = await docker(h, ['rm', '-f', name]);
          if (r.code === 0 || /No such container/i.test(r.stderr)) {
            containers.delete(name);
            count('detach', 'ok');
          } else note('detach', h, r);
        },
      },
      snapshot: {
        w: 2,
        run: async (h) => {
          const vs = visible(h).filter((v) => v.state === 'live' && v.home === h.name && v.snapshots.size < 4);
          if (!vs.length) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            const s = `s${++seq}`;
            const r = await ferry(h, ['snapshot', 'create', v.name, '--name', s]);
            const out = note('snapshot', h, r);
            if (out === 'ok') v.snapshots.set(s, cloneFiles(v.files));
            else v.maybeSnapshots.add(s);
          } finally {
            busy.delete(v.name);
          }
        },
      },
      restore: {
        w: 1,
        run: async (h) => {
          const used = new Set([...containers.values()].map((x) => x.vol));
          const vs = visible(h).filter((v) => v.state === 'live' && v.home === h.name && v.snapshots.size && !used.has(v.name));
          if (!vs.length) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            const [s, files] = pick([...v.snapshots]);
            const r = await ferry(h, ['snapshot', 'restore', v.name, s]);
            const out = note('restore', h, r);
            if (out === 'ok') {
              v.files = cloneFiles(files);
              v.alt = undefined;
            } else if (out === 'failed') v.alt = cloneFiles(files);
          } finally {
            busy.delete(v.name);
          }
        },
      },
      clone: {
        w: 1,
        run: async (h) => {
          if (model.volumes.size > 40) return;
          const vs = visible(h).filter((v) => v.state === 'live' && v.home === h.name && v.snapshots.size);
          if (!vs.length) return;
          const v = pick(vs);
          const [s, files] = pick([...v.snapshots]);
          const name = `v${++seq}`;
          busy.add(name);
          try {
            const r = await docker(h, ['volume', 'create', '-d', 'ferry', '-o', `from=${v.name}@${s}`, ...(v.pool === 'local' ? ['-o', 'pool=local'] : []), name]);
            note('clone', h, r);
            await learn(h, name, cloneFiles(files));
            if (r.code !== 0) {
              if (outcome(r) === 'failed') model.failedCreates.add(name);
              const st = await resolve(name);
              if (st === 'absent') model.volumes.delete(name);
              else model.volumes.get(name)!.state = st === 'live' ? 'live' : 'unknown';
            }
          } finally {
            busy.delete(name);
          }
        },
      },
      rm: {
        w: 2,
        run: async (h) => {
          const used = new Set([...containers.values()].map((x) => x.vol));
          const vs = visible(h).filter((v) => v.state === 'live' && !used.has(v.name));
          if (!vs.length || vs.length < 4) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            const r = await docker(h, ['volume', 'rm', v.name]);
            const out = note('rm', h, r);
            if (out === 'ok') {
              v.state = 'trash';
              v.removedOn = h.name;
            } else if (out === 'failed') {
              const s = await resolve(v.name);
              v.state = s === 'live' ? 'live' : s === 'trash' ? 'trash' : 'unknown';
              if (v.state !== 'live') v.removedOn = h.name;
            }
          } finally {
            busy.delete(v.name);
          }
        },
      },
      undelete: {
        w: 1,
        run: async (h) => {
          const vs = visible(h).filter((v) => v.state === 'trash' && v.removedOn === h.name);
          if (!vs.length) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            const r = await ferry(h, ['volume', 'undelete', v.name]);
            const out = note('undelete', h, r);
            if (out === 'ok') v.state = 'live';
            else if (out === 'failed') {
              const s = await resolve(v.name);
              v.state = s === 'live' ? 'live' : s === 'trash' ? 'trash' : 'unknown';
            }
          } finally {
            busy.delete(v.name);
          }
        },
      },
      backup: {
        w: 1,
        run: async (h) => {
          const vs = visible(h).filter((v) => v.state === 'live' && v.home === h.name);
          if (!vs.length) return;
          const v = pick(vs);
          busy.add(v.name);
          try {
            const files = cloneFiles(v.files);
            const r = await ferry(h, ['backup', 'create', v.name, '--target', 'soak']);
            const out = note('backup', h, r);
            const url = /file:\/\/\S+\?backup=\S+/.exec(r.stdout)?.[0];
            if (out === 'ok' && url) backupsMade.push({ url, files });
            else if (out === 'ok') log(`backup of ${v.name}: no URL in ${r.stdout.slice(0, 200)}`);
          } finally {
            busy.delete(v.name);
          }
        },
      },
      'restore-backup': {
        w: 1,
        run: async (h) => {
          if (!backupsMade.length || model.volumes.size > 40) return;
          const b = pick(backupsMade);
          const name = `v${++seq}`;
          busy.add(name);
          try {
            const r = await docker(h, ['volume', 'create', '-d', 'ferry', '-o', `backup=${b.url}`, ...(rand() < 0.3 ? ['-o', 'pool=local'] : []), name], 300_000);
            note('restore-backup', h, r);
            await learn(h, name, cloneFiles(b.files));
            if (r.code !== 0) {
              if (outcome(r) === 'failed') model.failedCreates.add(name);
              const st = await resolve(name);
              if (st === 'absent') model.volumes.delete(name);
              else model.volumes.get(name)!.state = st === 'live' ? 'live' : 'unknown';
            }
          } finally {
            busy.delete(name);
          }
        },
      },
    };
    const table = Object.entries(ops).flatMap(([k, x]) => Array<string>(x.w).fill(k));

    // the faults: kill -9 a ferryd (started again a few seconds later), or restart a dockerd (with its
    // ferryd, which lives in the engine's namespaces: a host reboot, its containers stop)
    let stopFaults = false;
    const faultLoop = (async () => {
      await sleep(faultEvery * (0.5 + rand()));
      while (!stopFaults && Date.now() < end - 20_000) {
        const h = pick(hosts);
        const kind = rand() < 0.6 ? 'kill -9 ferryd' : 'restart dockerd';
        summary.faults[kind] = (summary.faults[kind] ?? 0) + 1;
        log(`FAULT ${kind} on ${h.name}`);
        try {
          if (kind === 'kill -9 ferryd') {
            h.ferryd!.kill('SIGKILL');
            await sleep(1000 + rand() * 7000);
            await h.ferryd!.restart();
          } else {
            let open!: () => void;
            const gate = new Promise<void>((r) => (open = r));
            hostGate.set(h.name, gate);
            try {
              await h.engine.restart();
              await h.ferryd!.restart();
              await h.dockerOk(['volume', 'ls', '-q'], { timeoutMs: 120_000 });
            } finally {
              hostGate.delete(h.name);
              open();
            }
            // its containers were stopped by the restart: the user removes them
            for (const [n, x] of containers) if (x.host === h.name) {
              await docker(h, ['rm', '-f', n]);
              containers.delete(n);
            }
          }
          log(`FAULT ${kind} on ${h.name}: recovered`);
        } catch (e) {
          log(`FAULT ${kind} on ${h.name}: recovery failed: ${String(e)}`);
          summary.violations.push({ invariant: 'recovery', detail: `${h.name} after ${kind}: ${String(e).slice(0, 300)}` });
        }
        await sleep(faultEvery * (0.5 + rand()));
      }
    })();

    // one user per host, in parallel; the choices come from one seeded stream
    const worker = async (h: ClusterHost) => {
      while (Date.now() < end) {
        const gate = hostGate.get(h.name);
        if (gate) await gate;
        const kind = pick(table);
        try {
          await ops[kind]!.run(h);
        } catch (e) {
          count(kind, 'failed');
          log(`${kind} on ${h.name} threw: ${String(e).slice(0, 300)}`);
        }
      }
    };
    await Promise.all(hosts.map(worker));
    stopFaults = true;
    await faultLoop;
    log(`operations done; ${JSON.stringify(summary.ops)}; faults ${JSON.stringify(summary.faults)}`);

    // settle: every ferryd up, the containers the user still runs are running; volumes whose fate was
    // lost are looked up now that every ferryd answers
    for (const h of hosts) if (!h.ferryd!.running) await h.ferryd!.restart();
    for (const v of model.volumes.values()) {
      if (v.state !== 'unknown') continue;
      const s = await resolve(v.name);
      if (s === 'absent') model.volumes.delete(v.name);
      else if (s === 'live' || s === 'trash') {
        v.state = s;
        if (v.pool === 'unknown') {
          const r = await ferry(hosts.find((x) => x.name === v.home)!, ['--json', 'volume', 'inspect', v.name]);
          if (r.code === 0) {
            const info = JSON.parse(r.stdout) as { pool: string; shared: boolean };
            v.pool = info.pool;
            v.shared = info.shared;
          }
        }
      } else summary.violations.push({ invariant: 'catalog', detail: `${v.name}: no ferryd can say whether it exists` });
    }
    const vs = await checkInvariants({ hosts, model, docker, ferry, log });
    summary.violations.push(...vs);
    summary.leftovers = model.leftovers;
    summary.volumes = { live: [...model.volumes.values()].filter((v) => v.state === 'live').length, trash: [...model.volumes.values()].filter((v) => v.state === 'trash').length };
    await writeFile(join(logDir, `ferry-soak-${seed}-model.json`), JSON.stringify([...model.volumes.values()].map((v) => ({ ...v, files: [...v.files], snapshots: [...v.snapshots.keys()], maybeSnapshots: [...v.maybeSnapshots], alt: v.alt ? [...v.alt] : undefined })), null, 1));
  } finally {
    summary.durationMs = Date.now() - t0;
    if (c) {
      if (summary.violations.length) {
        // keep the ferryd logs for the report
        for (const h of c.hosts) {
          const f = h.ferryd;
          if (f) await writeFile(join(logDir, `ferry-soak-${seed}-${h.name}-ferryd.log`), await f.logs()).catch(() => undefined);
        }
      }
      await c.stop().catch((e) => log(`teardown: ${String(e)}`));
    }
  }
  return summary;
}

export function formatSummary(s: SoakSummary): string {
  const lines = [`soak: seed ${s.seed}, ${(s.durationMs / 60_000).toFixed(1)} min`];
  lines.push('operations (ok / failed under faults / refused):');
  for (const [k, x] of Object.entries(s.ops).sort()) lines.push(`  ${k.padEnd(15)} ${String(x.ok).padStart(5)} ${String(x.failed).padStart(5)} ${String(x.refused).padStart(5)}`);
  const total = Object.values(s.ops).reduce((a, x) => a + x.ok + x.failed + x.refused, 0);
  lines.push(`  total           ${total}`);
  lines.push(`faults: ${Object.entries(s.faults).map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`);
  lines.push(`docker calls: ${s.dockerCalls}; longest wait ${(s.longestDockerMs / 1000).toFixed(1)} s (${s.longestDockerCall})`);
  if (s.rereads) lines.push(`reads taken again after the share's cache window (a file just rewritten on another host read old): ${s.rereads}`);
  lines.push(`volumes at the end: ${s.volumes.live} live, ${s.volumes.trash} in the trash`);
  if (s.leftovers.length) lines.push(`leftovers of operations killed with their ferryd (not violations): ${s.leftovers.join('; ')}`);
  lines.push(`invariant violations: ${s.violations.length}`);
  for (const v of s.violations) lines.push(`  ${v.invariant}: ${v.detail}`);
  if (s.violations.length) lines.push(`replay: npm run soak -- --minutes ${Math.max(1, Math.round(s.durationMs / 60_000))} --seed ${s.seed}`);
  return lines.join('\n');
}
