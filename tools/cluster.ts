/**
 * npm run cluster -- up 3 [--gluster] [--config FILE] [--ferryd-arg ARG]... | status | down
 *
 * A throw-away multi-host Docker environment on this machine, for trying Ferry across hosts by hand:
 * N private Docker engines (hostA, hostB, ...) on a private LAN, a ferryd on each, a Swarm, optionally a
 * GlusterFS server. `up` leaves it all running and records it in STATE_DIR/state.json; `down` removes it
 * (also after a crashed `up`). See docs/cluster.md. Needs root.
 */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { findClusters, startCluster, sweepCluster, type Cluster, type ClusterState } from '../test/helpers/cluster.js';
import { startGluster } from '../test/helpers/gluster.js';
import { writeFileAtomic } from '../src/util/atomic.js';

const STATE_DIR = process.env.FERRY_CLUSTER_DIR ?? '/tmp/ferry-cluster';
const STATE_FILE = join(STATE_DIR, 'state.json');

let stateWrites: Promise<void> = Promise.resolve();

/**
 * Record the cluster's state. Writes are queued one after the other, each through its own temporary file:
 * two writes racing on one `state.json.tmp` made `up` fail with ENOENT on the rename.
 */
function writeState(s: ClusterState & { createdAt?: string; complete?: boolean }): Promise<void> {
  const text = JSON.stringify(s, null, 2) + '\n';
  const write = stateWrites.then(async () => {
    await mkdir(STATE_DIR, { recursive: true });
    await writeFileAtomic(STATE_FILE, text);
  });
  stateWrites = write.catch(() => undefined);
  return write;
}

async function readState(): Promise<(ClusterState & { complete?: boolean }) | undefined> {
  try {
    return JSON.parse(await readFile(STATE_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

const alive = (pid: number | undefined) => pid !== undefined && pid > 1 && existsSync(`/proc/${pid}`);

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (m, k: string) => vars[k] ?? m);
}

function printAccess(s: ClusterState): void {
  for (const h of s.hosts) {
    if (!h.socket) continue;
    console.log(`# ${h.name} (${h.ip})`);
    console.log(`export DOCKER_HOST=unix://${h.socket}`);
    if (h.ferryd) console.log(`export FERRY_API_SOCKET=${h.ferryd.apiSocket}`);
    if (h.dockerdPid) console.log(`# shell inside ${h.name}: nsenter -t ${h.dockerdPid} -m -n -u sh`);
  }
  if (s.gluster) console.log(`# GlusterFS: mount -t glusterfs ${s.gluster.device} DIR (from a host's namespaces); server ${s.gluster.ip}`);
}

async function up(hostsArg: string, o: { gluster?: boolean; glusterMount?: boolean; config?: string; ferrydArg: string[]; swarm: boolean; ferryd: boolean }): Promise<void> {
  const n = Number(hostsArg);
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new InvalidArgumentError('hosts must be 1..5');
  const old = await readState();
  if (old) {
    throw new Error(`a cluster is recorded in ${STATE_FILE} (id ${old.id}); run \`npm run cluster -- down\` first`);
  }
  const configText = o.config ? await readFile(o.config, 'utf8') : undefined;
  const t0 = Date.now();
  let cluster: Cluster | undefined;
  let extra: { createdAt: string; complete?: boolean } = { createdAt: new Date().toISOString() };
  try {
    cluster = await startCluster({ hosts: n, name: 'up', parentDir: STATE_DIR, keepOnExit: true, onState: (s) => writeState({ ...s, ...extra }) });
    const c = cluster;
    console.error(`hosts up in ${Date.now() - t0} ms: ${c.hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}`);
    let device = '';
    if (o.gluster || o.glusterMount) {
      const g = await startGluster(c);
      device = g.device;
      console.error(`GlusterFS ${g.device} up`);
      if (o.glusterMount) {
        for (const h of c.hosts) console.error(`${h.name}: ${g.device} mounted on ${await g.mount(h, join(h.dir, 'mnt', 'gv0'))}`);
      }
    }
    if (o.ferryd) {
      await Promise.all(
        c.hosts.map((h) =>
          h.startFerryd({
            args: o.ferrydArg,
            logLevel: 'debug',
            ...(configText !== undefined ? { configYaml: fill(configText, { 'host.name': h.name, 'host.ip': h.ip, 'host.dir': h.dir, 'gluster.device': device }) } : {}),
          }),
        ),
      );
      console.error(`ferryd running on ${c.hosts.length} host(s)`);
    }
    if (o.swarm) {
      const t = await c.swarm();
      console.error(`swarm: init ${t.initMs} ms, join ${t.joinMs} ms; manager ${c.manager.name}`);
    }
    extra = { ...extra, complete: true };
    await writeState({ ...c.state(), ...extra });
    console.error(`up in ${Date.now() - t0} ms; state in ${STATE_FILE}; tear down with: npm run cluster -- down`);
    printAccess(c.state());
  } catch (e) {
    console.error(`up failed: ${e instanceof Error ? e.message : String(e)}\ntearing down...`);
    if (cluster) await cluster.stop().catch((err) => console.error(String(err)));
    await down();
    throw e;
  }
}

async function status(): Promise<void> {
  const s = await readState();
  if (!s) {
    console.log(`no cluster recorded in ${STATE_FILE}`);
    return;
  }
  console.log(`cluster ${s.id} on ${s.subnet}.0/24, dir ${s.dir}${s.complete ? '' : ' (up did not complete: run down)'}`);
  for (const h of s.hosts) {
    const info = h.socket && alive(h.dockerdPid)
      ? spawnSync('docker', ['-H', `unix://${h.socket}`, 'info', '--format', '{{.Name}} swarm={{.Swarm.LocalNodeState}} containers={{.ContainersRunning}}'], { encoding: 'utf8', timeout: 20_000 }).stdout.trim()
      : '';
    console.log(`${h.name} ${h.ip}: dockerd ${alive(h.dockerdPid) ? `pid ${h.dockerdPid}` : 'DOWN'}${info ? ` (${info})` : ''}, ferryd ${h.ferryd ? (alive(h.ferryd.pid) ? `pid ${h.ferryd.pid}` : 'DOWN') : 'none'}`);
  }
  if (s.gluster) console.log(`gluster ${s.gluster.device}: glusterd ${alive(s.gluster.pid) ? `pid ${s.gluster.pid}` : 'DOWN'}`);
  const m = s.hosts[0];
  if (s.swarm && m?.socket && alive(m.dockerdPid)) {
    const r = spawnSync('docker', ['-H', `unix://${m.socket}`, 'node', 'ls'], { encoding: 'utf8', timeout: 20_000 });
    process.stdout.write(r.stdout + r.stderr);
  }
  printAccess(s);
}

async function down(o: { all?: boolean } = {}): Promise<void> {
  const t0 = Date.now();
  const s = await readState();
  const problems: string[] = [];
  const seen = new Set<string>();
  if (s) {
    seen.add(s.id);
    problems.push(...(await sweepCluster(s)));
  }
  // a crashed `up` may have made a cluster dir before the state file said so
  let ents: string[] = [];
  try {
    ents = await readdir(STATE_DIR);
  } catch {
    /* nothing */
  }
  for (const e of ents) {
    const m = /^ferry-cl-([A-Za-z0-9]+)$/.exec(e);
    if (!m || seen.has(m[1]!)) continue;
    problems.push(...(await sweepCluster({ id: m[1]!, dir: join(STATE_DIR, e) })));
  }
  if (o.all) {
    for (const c of await findClusters(['/tmp', STATE_DIR])) {
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      console.error(`removing cluster ${c.id}${c.dir ? ` (${c.dir})` : ''}`);
      problems.push(...(await sweepCluster(c)));
    }
  }
  if (problems.length) {
    console.error(`down: left behind:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
    return;
  }
  await rm(STATE_FILE, { force: true });
  await rm(`${STATE_FILE}.tmp`, { force: true });
  await rmdir(STATE_DIR).catch(() => undefined);
  console.error(`down in ${Date.now() - t0} ms${s ? ` (cluster ${s.id})` : ' (nothing recorded)'}`);
}

const program = new Command('cluster')
  .description(`several private Docker hosts with a ferryd each, on a private LAN, as a Swarm (state in ${STATE_FILE})`)
  .showHelpAfterError();
program
  .command('up')
  .argument('<hosts>', 'number of hosts, 1..5 (hostA, hostB, ...)')
  .option('--gluster', 'also start a GlusterFS server on the LAN (volume gv0 at 10.X.Y.254:/gv0)')
  .option('--gluster-mount', 'start GlusterFS and mount gv0 on every host at HOSTDIR/mnt/gv0 (implies --gluster)')
  .option('--config <file>', 'ferryd config YAML for every host; {{host.name}} {{host.ip}} {{host.dir}} {{gluster.device}} are replaced')
  .option('--ferryd-arg <arg>', 'extra `ferry daemon` argument, repeatable (e.g. --ferryd-arg=--trash-retention=0)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--no-swarm', 'do not form a Swarm')
  .option('--no-ferryd', 'do not start a ferryd on the hosts')
  .action(async (hosts: string, o) => up(hosts, o));
program.command('status').description('show the recorded cluster and how to reach it').action(status);
program
  .command('down')
  .description('tear the recorded cluster down (also after a crashed up)')
  .option('--all', 'also remove every other cluster of this harness on the machine (left by crashed tests, or RUNNING tests)')
  .action((o: { all?: boolean }) => down(o));

if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  console.error('npm run cluster needs root (network namespaces, dockerd)');
  process.exit(1);
}
try {
  await program.parseAsync(process.argv);
  process.exit(process.exitCode ?? 0);
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
}
