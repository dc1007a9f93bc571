/** The checks ferryd makes of itself for `ferry doctor` (GET /v1/doctor): lock, plugin socket, Docker, pools, shared pools, orphans, warnings. */
import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { DataDirLock } from '../util/data-dir-lock.js';
import type { Pool } from '../pools/pool.js';
import type { VolumeService } from '../volumes/service.js';
import type { Cluster } from '../cluster/cluster.js';
import type { DockerClient } from '../docker/client.js';
import type { StateWarnings } from '../util/state-warnings.js';
import { errorMessage, isErrno } from '../util/errors.js';
import { ok, problem, skipped, type DoctorCheck } from './check.js';
import { poolCheck } from './local.js';
import { clockReadings, judgeClocks, linkProbe } from './share-probes.js';
import { orphanChecks } from './orphans.js';
import { cacheAdvice, type GlusterCaches } from '../pools/gluster-cache.js';
import { findShadows, shadowText } from '../docker/shadows.js';

export interface DaemonDoctorDeps {
  pid: number;
  node: string;
  dataDir: string;
  pluginSocket: string;
  dockerHost: string;
  roDir: string;
  lock: DataDirLock;
  pools: Pool[];
  service: VolumeService;
  cluster: Cluster;
  /** Absent with `dockerHost: none` (no Docker engine on this host). */
  docker: DockerClient | undefined;
  warnings: StateWarnings;
}

/** Docker's legacy plugin discovery: sockets in /run/docker/plugins, spec files in two directories. */
export async function whereDockerFinds(socket: string): Promise<string | undefined> {
  const name = basename(socket, '.sock');
  if (dirname(socket) === '/run/docker/plugins' || socket === `/run/docker/plugins/${name}/${name}.sock`) return '/run/docker/plugins';
  for (const dir of ['/etc/docker/plugins', '/usr/lib/docker/plugins']) {
    for (const ext of ['.spec', '.json']) {
      const file = `${dir}/${name}${ext}`;
      const text = await readFile(file, 'utf8').catch(() => '');
      if (text.includes(socket)) return file;
    }
  }
  return undefined;
}

/** Does the plugin socket answer Docker's handshake as a volume driver? */
function activate(socket: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'POST', path: '/Plugin.Activate', timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        try {
          resolve((JSON.parse(text) as { Implements?: string[] }).Implements ?? []);
        } catch {
          reject(new Error(`answered ${res.statusCode} ${text.slice(0, 80)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
    req.on('error', reject);
    req.end();
  });
}

async function pluginChecks(d: DaemonDoctorDeps): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const driver = basename(d.pluginSocket, '.sock');
  try {
    const impl = await activate(d.pluginSocket);
    out.push(impl.includes('VolumeDriver') ? ok('plugin-socket', `plugin socket ${d.pluginSocket} answers as volume driver ${driver}`) : problem('plugin-socket', `plugin socket ${d.pluginSocket} answers, but not as a volume driver (${impl.join(',')})`, 'another program serves that path: give ferryd its own pluginSocket'));
  } catch (err) {
    out.push(problem('plugin-socket', `ferryd's plugin socket ${d.pluginSocket} does not answer (${errorMessage(err)}): Docker cannot reach ferryd`, 'restart ferryd: it creates the socket again'));
  }
  const where = await whereDockerFinds(d.pluginSocket);
  const elsewhere = `Docker looks for plugin sockets in /run/docker/plugins and for spec files in /etc/docker/plugins; ${d.pluginSocket} is in neither`;
  const placeFix = `set pluginSocket: /run/docker/plugins/${driver}.sock, or write /etc/docker/plugins/${driver}.spec containing unix://${d.pluginSocket}`;
  if (!d.docker) {
    out.push(skipped('docker', `dockerHost: none: no Docker engine on this host to ask whether it lists driver ${driver}`));
    return out;
  }
  let drivers: string[];
  try {
    drivers = await d.docker.volumeDrivers();
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      // not only unasked: without the engine ferryd cannot tell which containers use a volume, so removals are refused
      out.push(
        problem(
          'docker',
          `no Docker engine at ${d.dockerHost}: ferryd cannot ask which containers use a volume (\`ferry volume rm\` refuses without --force) or whether Docker lists driver ${driver}${where ? '' : ` (and ${elsewhere})`}`,
          'start dockerd (or wait for it), or on a host without Docker set dockerHost: none',
        ),
      );
    } else {
      out.push(problem('docker', `the Docker engine at ${d.dockerHost} does not answer: ${errorMessage(err)}`, `start dockerd, or set dockerHost to its socket`));
    }
    return out;
  }
  if (drivers.includes(driver)) out.push(ok('docker', `Docker lists volume driver ${driver} (${where ? `found via ${where}` : "in the engine's own mount namespace"})`));
  else out.push(problem('docker', `Docker at ${d.dockerHost} does not list volume driver ${driver} (it lists: ${drivers.join(', ') || 'none'})${where ? '' : `; ${elsewhere}`}`, where ? `check \`docker volume ls\` and dockerd's log for ${d.pluginSocket}` : placeFix));
  return out;
}

async function sharedChecks(d: DaemonDoctorDeps, pool: Pool): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [await linkProbe(pool.name, pool.root, d.node)];
  try {
    const store = await d.cluster.store(pool.name);
    const now = Date.now();
    const { nodeTimeoutMs } = d.cluster.settings;
    const beats = (await store.nodes()).filter((b) => !b.stoppedAt && now - Date.parse(b.lastSeen) <= nodeTimeoutMs).map((beat) => ({ beat, file: store.beatPath(beat.node) }));
    out.push(judgeClocks(pool.name, await clockReadings(pool.root, d.node, beats)));
  } catch (err) {
    out.push(problem(`clocks:${pool.name}`, `shared pool ${pool.name}: could not compare clocks: ${errorMessage(err)}`, 'check the share'));
  }
  if (pool.clientCaches) out.push(await cacheCheck(pool.name, pool.clientCaches()));
  return out;
}

/** Does the share's client answer for other nodes' changes from its own caches (GlusterFS; docs/shared-pools.md)? */
async function cacheCheck(pool: string, looked: Promise<GlusterCaches>): Promise<DoctorCheck> {
  const id = `cache:${pool}`;
  let c: GlusterCaches;
  try {
    c = await looked;
  } catch (err) {
    return skipped(id, `shared pool ${pool}: could not look at its client's caches (${errorMessage(err)})`);
  }
  if (c.kind === 'not-gluster') return skipped(id, `shared pool ${pool}: not GlusterFS (NFS: see docs/shared-pools.md for its attribute cache)`);
  if (c.kind === 'unknown') return skipped(id, `shared pool ${pool}: GlusterFS at ${c.mountPoint}, but ${c.why}`);
  if (c.on.length === 0) return ok(id, `shared pool ${pool}: its GlusterFS client (${c.mountPoint}) keeps no cache that answers for other nodes' changes`);
  // (a note, not a problem: with these caches off the soak read old file content across hosts; see the docs)
  return ok(id, cacheAdvice(pool, c).message);
}

/** Docker volumes of another driver under a ferry volume's name (docker/shadows.ts). */
async function shadowChecks(d: DaemonDoctorDeps): Promise<DoctorCheck[]> {
  if (!d.docker) return [];
  const driver = basename(d.pluginSocket, '.sock');
  let listed;
  try {
    listed = await d.docker.volumes();
  } catch (err) {
    return [skipped('docker-names', `could not list Docker's volumes (${errorMessage(err)}) to look for same-named volumes of other drivers`)];
  }
  const shadows = findShadows(listed, driver, (name) => d.service.has(name));
  if (shadows.length === 0) return [ok('docker-names', `no Docker volume of another driver carries the name of a ferry volume`)];
  return shadows.map((s) => {
    const t = shadowText(s, driver);
    return problem(`docker-name:${s.name}`, t.message, t.fix);
  });
}

/** Every check, in the order an operator reads them. */
export async function daemonChecks(d: DaemonDoctorDeps): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const lock = d.lock.check();
  out.push(lock.ok ? ok('lock', `ferryd (pid ${d.pid}) holds the lock of ${d.dataDir}`) : problem('lock', lock.problem, 'restart ferryd (after making sure no second ferryd runs on this data dir)'));
  out.push(...(await pluginChecks(d)));
  const up: Pool[] = [];
  for (const pool of d.pools) {
    const c = await poolCheck({ name: pool.name, path: pool.root, shared: pool.shared });
    out.push(c);
    if (c.state !== 'ok') continue;
    up.push(pool);
    if (pool.shared) out.push(...(await sharedChecks(d, pool)));
  }
  await d.service.syncAll().catch(() => undefined);
  out.push(...(await shadowChecks(d)));
  out.push(
    ...(await orphanChecks({
      pools: up,
      volumes: d.service.list().map((v) => ({ name: v.name, pool: v.pool, access: v.access, mounts: v.mounts })),
      trash: d.service.trashList(),
      sharedNames: async (pool) => (await d.cluster.store(pool)).names(),
      filling: await d.service.fillsMarked().catch(() => undefined),
      roDir: d.roDir,
    })),
  );
  const warnings = d.warnings.list();
  for (const w of warnings) out.push(problem(`warning:${w.code}`, `${w.message}${w.file ? ` [${w.file}]` : ''} (since ${w.at})`, w.file ? `look at ${w.file}; \`ferry status\` lists these warnings until ferryd restarts` : '`ferry status` lists these warnings until ferryd restarts'));
  if (warnings.length === 0) out.push(ok('warnings', 'no state warnings'));
  return out;
}
