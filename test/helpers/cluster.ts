/**
 * Several Docker hosts on this one machine, on a private LAN, for multi-host and Swarm tests.
 *
 * startCluster({ hosts: 2 }) makes:
 * - a LAN: a bridge `br0` inside its own network namespace `ferry-ID-lan` (never in the root namespace:
 *   nothing of the machine's own networking or firewall is touched), on a random 10.X.Y.0/24;
 * - per host (hostA, hostB, hostC): a network namespace `ferry-ID-hostA` with `eth0` = 10.X.Y.11 (.12, .13),
 *   a veth to the bridge, no default route; and in it a DockerHost (see dockerhost.ts, LAN mode): its own
 *   mount and UTS namespaces (hostname hostA), dockerd with `--swarm-default-advertise-addr 10.X.Y.11`.
 * Everything lives under one directory (/tmp/ferry-cl-ID unless parentDir says otherwise; hosts in DIR/hostA
 * ..., keep parentDir short: containerd's socket paths must fit in 104 bytes); cgroup parents are
 * /ferry-dh-ID-hostA. stop() (and sweepCluster() from a recorded ClusterState, for a process
 * that crashed) removes all of it.
 *
 * Per host, startFerryd() runs `node ROOT/bin/ferry daemon` INSIDE the host's namespaces, with its plugin
 * socket in the host's plugin dir (= that engine's /run/docker/plugins) and its API socket under the
 * host's instance dir (reachable from the root namespace). swarm() activates the ferry plugin on every
 * host that runs a ferryd (before init/join: otherwise Swarm says "no suitable node (missing plugin)"
 * for ~20 s), inits on hostA and joins the others as workers.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, fstatSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDockerHost, runQuiet, type CommandOptions, type CommandResult, type DockerHost, type ExecOptions } from './dockerhost.js';
import { FERRY_BIN, runFerry, type RunResult } from './ferryd.js';
import { cgroupsWithPrefix, isAlive as alive, killQuiet, mountsUnder, pidsInCgroups as pidsOfCgroups } from './reap.js';

export const HOST_NAMES = ['hostA', 'hostB', 'hostC', 'hostD', 'hostE'] as const;

/** Machine directories each host gets a private copy of (see DockerHostOptions.privateDirs): HOSTDIR/private/... */
export const HOST_PRIVATE_DIRS = ['/var/log/glusterfs', '/var/lib/glusterd', '/run/gluster'];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ClusterOptions {
  /** Number of Docker hosts (2 or 3 in the tests; up to 5). */
  hosts: number;
  /** Short label (letters/digits, first 8 used) in the cluster id, netns names and directories. Default 'cl'. */
  name?: string;
  /** Where the cluster directory is made (default /tmp). */
  parentDir?: string;
  /** Leave engines and ferryds running when this process exits (the `npm run cluster` tool). */
  keepOnExit?: boolean;
  /** Extra dockerd flags for every host. */
  dockerdArgs?: string[];
  /** Called whenever something was created, with what must be removed (write it to a file to survive a crash). */
  onState?: (state: ClusterState) => void | Promise<void>;
}

/** What a cluster consists of: enough for sweepCluster() to remove it from another process. */
export interface ClusterState {
  id: string;
  dir: string;
  subnet: string;
  lanNetns: string;
  hosts: Array<{ name: string; ip: string; netns: string; dir?: string; socket?: string; dockerdPid?: number; ferryd?: { dir: string; apiSocket: string; pid: number } }>;
  gluster?: { netns: string; ip: string; dir: string; device: string; pid?: number };
  swarm?: boolean;
}

export interface ClusterFerrydOptions {
  /** Extra `ferry daemon` arguments (after the ones the helper sets). */
  args?: string[];
  /** YAML written to the host's ferry.yaml and passed with --config (default: an empty file, so /etc/ferry is never read). */
  configYaml?: string;
  /** Instead of configYaml: an existing config file (read by ferryd from inside the host's mount namespace). */
  configFile?: string;
  logLevel?: 'info' | 'debug';
  /** How long to wait for the "ferryd ready" log line (default 60 s). */
  readyTimeoutMs?: number;
}

/** A ferryd running inside one cluster host's namespaces. */
export interface ClusterFerryd {
  readonly dir: string;
  readonly dataDir: string;
  readonly pluginSocket: string;
  /** Control API socket, under the host's instance dir; usable from the root namespace. */
  readonly apiSocket: string;
  readonly logFile: string;
  /** pid of the node process (nsenter execs it), -1 when not running. */
  readonly pid: number;
  readonly running: boolean;
  /** { FERRY_API_SOCKET } for the CLI. */
  readonly env: Record<string, string>;
  /** Runs the ferry CLI (from the root namespace) against this daemon. */
  cli(...args: string[]): Promise<RunResult>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, SIGKILL after 15 s; resolves with the exit code (null if killed or not running). */
  stop(): Promise<number | null>;
  /** stop() then start again on the same data dir, config and sockets. */
  restart(): Promise<void>;
  logs(): Promise<string>;
}

/** One Docker host of a cluster: the DockerHost API plus its name, address and ferryd. */
export interface ClusterHost {
  /** hostA, hostB, ... (also its hostname, Swarm's node.hostname). */
  readonly name: string;
  /** LAN address, e.g. 10.123.45.11. */
  readonly ip: string;
  /** Path of its network namespace (/run/netns/ferry-ID-hostA). */
  readonly netns: string;
  readonly engine: DockerHost;
  readonly dir: string;
  readonly pluginDir: string;
  readonly socket: string;
  /** 'unix://...' for DOCKER_HOST. */
  readonly host: string;
  readonly pid: number;
  /** The ferryd started with startFerryd(), if any. */
  readonly ferryd: ClusterFerryd | undefined;
  docker(args: string[], opts?: CommandOptions): Promise<CommandResult>;
  dockerOk(args: string[], opts?: CommandOptions): Promise<string>;
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<CommandResult>;
  execOk(cmd: string, args: string[], opts?: ExecOptions): Promise<string>;
  /** Starts a ferryd inside this host's namespaces (one per host); resolves when it logged "ferryd ready". */
  startFerryd(opts?: ClusterFerrydOptions): Promise<ClusterFerryd>;
}

export interface SwarmTimes {
  /** `docker volume ls` on every host with a ferryd (plugin activation). */
  activateMs: number;
  initMs: number;
  /** All joins, until `docker node ls` on the manager shows every node Ready. */
  joinMs: number;
}

export interface Cluster {
  readonly id: string;
  readonly dir: string;
  /** '10.X.Y' */
  readonly subnet: string;
  readonly lanNetns: string;
  readonly hosts: ClusterHost[];
  /** hosts[0], the Swarm manager. */
  readonly manager: ClusterHost;
  host(name: string): ClusterHost;
  /** A free LAN address .N (e.g. for a storage server) that no host uses: 10.X.Y.N. */
  address(n: number): string;
  /**
   * Attaches a new network namespace `ferry-ID-SUFFIX` to the LAN with address 10.X.Y.N/24 (loopback up);
   * removed by stop(). Returns its path.
   */
  attachNetns(suffix: string, n: number): Promise<string>;
  /** Activates ferry on every host running a ferryd, swarm init on hosts[0], join the others (workers). */
  swarm(): Promise<SwarmTimes>;
  /** Waits until SERVICE has a running task on node HOST; returns that host's container id. */
  waitForTask(service: string, host: string, timeoutMs?: number): Promise<string>;
  /** Records a GlusterFS server in state() (gluster.ts). */
  noteGluster(g: ClusterState['gluster']): Promise<void>;
  /** Runs fn first in stop() (last registered first), before the hosts go down. */
  addCleanup(fn: () => Promise<void>): void;
  state(): ClusterState;
  /** Tears everything down; safe to call twice and after failures. Throws (after doing all it can) if something was left. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------

const run = runQuiet;

async function runOk(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, stepMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Network namespaces whose name starts with prefix (from /run/netns). */
async function netnsWithPrefix(prefix: string): Promise<string[]> {
  try {
    return (await readdir('/run/netns')).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

async function pidsOfNetns(name: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', name], 10_000);
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
}

/**
 * Removes whatever is left of a cluster, from its recorded state, without any in-memory handle (a crashed
 * test or `npm run cluster -- down`): first politely (swarm leave, docker rm -f, SIGTERM dockerd and ferryd,
 * wait), then by force: SIGKILL every process in a `ferry-ID-*` network namespace or `ferry-dh-ID-*`
 * cgroup, delete those namespaces and cgroups, unmount what is mounted under the cluster dir, remove it.
 * Returns what it could not remove (empty when all is clean).
 */
export async function sweepCluster(state: Pick<ClusterState, 'id' | 'dir'> & Partial<ClusterState>, opts: { polite?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const docker = (socket: string, args: string[], timeoutMs: number) => run('docker', ['-H', `unix://${socket}`, ...args], timeoutMs);
  if (opts.polite !== false) {
    const live = (state.hosts ?? []).filter((h) => h.socket && alive(h.dockerdPid) && existsSync(h.socket));
    // workers leave first, then the manager
    const [first, ...rest] = live;
    await Promise.all(rest.map((h) => docker(h.socket!, ['swarm', 'leave', '--force'], 20_000)));
    if (first) await docker(first.socket!, ['swarm', 'leave', '--force'], 20_000);
    await Promise.all(
      live.map(async (h) => {
        const ps = await docker(h.socket!, ['ps', '-aq'], 20_000);
        const ids = ps.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
        if (ids.length) await docker(h.socket!, ['rm', '-f', ...ids], 60_000);
      }),
    );
    // a recorded pid is signalled only if it is still in one of the cluster's namespaces (pids are reused)
    const ours = new Set<number>();
    for (const n of await netnsWithPrefix(`ferry-${state.id}-`)) for (const p of await pidsOfNetns(n)) ours.add(p);
    const pids = (state.hosts ?? []).flatMap((h) => [h.dockerdPid, h.ferryd?.pid]).filter((p): p is number => p !== undefined && ours.has(p));
    for (const p of pids) killQuiet(p, 'SIGTERM');
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && pids.some(alive); ) await sleep(100);
  }
  const nsPrefix = `ferry-${state.id}-`;
  const cgPrefix = `ferry-dh-${state.id}-`;
  const killed = new Set<number>();
  for (let round = 0; ; round++) {
    const namespaces = await netnsWithPrefix(nsPrefix);
    const pids = new Set<number>(await pidsOfCgroups(await cgroupsWithPrefix(cgPrefix)));
    for (const n of namespaces) for (const p of await pidsOfNetns(n)) pids.add(p);
    if (pids.size === 0) break;
    if (round >= 100) {
      problems.push(`processes would not die: ${[...pids].join(' ')}`);
      break;
    }
    for (const p of pids) {
      killed.add(p);
      killQuiet(p, 'SIGKILL');
    }
    await sleep(100);
  }
  // orphans are reaped by init: wait (a little) so that no <defunct> entry of ours is left
  for (const deadline = Date.now() + 5000; Date.now() < deadline && [...killed].some((p) => existsSync(`/proc/${p}`)); ) await sleep(100);
  for (const n of await netnsWithPrefix(nsPrefix)) {
    const r = await run('ip', ['netns', 'del', n]);
    if (r.code !== 0) problems.push(`ip netns del ${n}: ${r.stderr.trim()}`);
  }
  for (let i = 0; i < 30; i++) {
    const dirs = await cgroupsWithPrefix(cgPrefix);
    if (dirs.length === 0) break;
    for (const d of dirs) await rmdir(d).catch(() => undefined);
    await sleep(100);
  }
  const leftCg = await cgroupsWithPrefix(cgPrefix);
  if (leftCg.length) problems.push(`cgroups left: ${leftCg.join(' ')}`);
  if (state.dir && existsSync(state.dir)) {
    for (const mp of await mountsUnder(state.dir)) {
      const r = await run('umount', ['-n', mp]);
      if (r.code !== 0) await run('umount', ['-n', '-l', mp]);
    }
    const left = await mountsUnder(state.dir);
    if (left.length) problems.push(`still mounted: ${left.join(' ')}`);
    else await rm(state.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }).catch((e) => problems.push(`rm ${state.dir}: ${String(e)}`));
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------

class Ferryd implements ClusterFerryd {
  readonly dataDir: string;
  readonly pluginSocket: string;
  readonly apiSocket: string;
  readonly logFile: string;
  readonly env: Record<string, string>;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  private childPid = -1;

  constructor(
    private readonly node: Node,
    readonly dir: string,
    private readonly args: string[],
    private readonly opts: ClusterFerrydOptions,
    private readonly detached: boolean,
  ) {
    this.dataDir = join(dir, 'data');
    this.pluginSocket = join(node.pluginDir, 'ferry.sock');
    this.apiSocket = join(dir, 'api.sock');
    this.logFile = join(dir, 'ferryd.log');
    this.env = { FERRY_API_SOCKET: this.apiSocket };
  }

  get pid(): number {
    return this.running ? this.childPid : -1;
  }

  get running(): boolean {
    return this.childPid > 0 && alive(this.childPid) && this.child?.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`ferryd on ${this.node.name} is already running (pid ${this.childPid})`);
    const fd = openSync(this.logFile, 'a');
    const offset = fstatSync(fd).size;
    let child: ChildProcess;
    try {
      child = this.node.engine.spawn(process.execPath, [FERRY_BIN, 'daemon', ...this.args], { stdio: ['ignore', fd, fd], detached: this.detached });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.childPid = child.pid ?? -1;
    if (this.detached) child.unref();
    let code: number | null | undefined;
    this.exited = new Promise((res) =>
      child.once('exit', (c) => {
        code = c;
        res(c);
      }),
    );
    child.once('error', () => undefined);
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 60_000);
    for (;;) {
      if (code !== undefined) throw new Error(`ferryd on ${this.node.name} exited (${code}) during start-up:\n${await this.logs()}`);
      const text = (await readFile(this.logFile).catch(() => Buffer.alloc(0))).subarray(offset).toString('utf8');
      if (text.includes('"msg":"ferryd ready"') && existsSync(this.pluginSocket)) return;
      if (Date.now() > deadline) {
        this.kill('SIGKILL');
        throw new Error(`ferryd on ${this.node.name} not ready in ${this.opts.readyTimeoutMs ?? 60_000} ms:\n${await this.logs()}`);
      }
      await sleep(50);
    }
  }

  cli(...a: string[]): Promise<RunResult> {
    return runFerry(a, this.env);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) killQuiet(this.childPid, signal);
  }

  async stop(): Promise<number | null> {
    if (!this.child || !this.running) return null;
    this.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 15_000)));
    const r = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (r === 'late') {
      this.kill('SIGKILL');
      await this.exited;
      return null;
    }
    return r;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  logs(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }
}

class Node implements ClusterHost {
  ferryd: Ferryd | undefined;
  constructor(
    readonly name: string,
    readonly ip: string,
    readonly netns: string,
    readonly engine: DockerHost,
    private readonly cluster: ClusterImpl,
  ) {}
  get dir() {
    return this.engine.dir;
  }
  get pluginDir() {
    return this.engine.pluginDir;
  }
  get socket() {
    return this.engine.socket;
  }
  get host() {
    return this.engine.host;
  }
  get pid() {
    return this.engine.pid;
  }
  docker(args: string[], opts?: CommandOptions) {
    return this.engine.docker(args, opts);
  }
  dockerOk(args: string[], opts?: CommandOptions) {
    return this.engine.dockerOk(args, opts);
  }
  exec(cmd: string, args: string[], opts?: ExecOptions) {
    return this.engine.exec(cmd, args, opts);
  }
  execOk(cmd: string, args: string[], opts?: ExecOptions) {
    return this.engine.execOk(cmd, args, opts);
  }

  async startFerryd(opts: ClusterFerrydOptions = {}): Promise<ClusterFerryd> {
    if (this.ferryd) throw new Error(`${this.name} already has a ferryd (use its restart())`);
    const dir = join(this.dir, 'ferry');
    await mkdir(dir, { recursive: true });
    let config = opts.configFile;
    if (!config) {
      config = join(dir, 'ferry.yaml');
      await writeFile(config, opts.configYaml ?? `# ferryd of ${this.name} (cluster ${this.cluster.id})\n`);
    }
    const args = [
      '--data-dir', join(dir, 'data'),
      '--plugin-socket', join(this.pluginDir, 'ferry.sock'),
      '--api-socket', join(dir, 'api.sock'),
      '--node', this.name,
      '--docker-host', this.host,
      '--log-level', opts.logLevel ?? 'debug',
      '--config', config,
      ...(opts.args ?? []),
    ];
    const f = new Ferryd(this, dir, args, opts, this.cluster.keepOnExit);
    this.ferryd = f;
    await f.start();
    await this.cluster.record();
    return f;
  }
}

class ClusterImpl implements Cluster {
  readonly hosts: Node[] = [];
  readonly extraNetns: string[] = [];
  private cleanups: Array<() => Promise<void>> = [];
  private stopping: Promise<void> | undefined;
  swarmUp = false;
  gluster: ClusterState['gluster'];

  constructor(
    readonly id: string,
    readonly dir: string,
    readonly subnet: string,
    readonly keepOnExit: boolean,
    private readonly onState: ClusterOptions['onState'],
  ) {}

  get lanNetns(): string {
    return `/run/netns/ferry-${this.id}-lan`;
  }
  get manager(): ClusterHost {
    const m = this.hosts[0];
    if (!m) throw new Error('cluster has no hosts');
    return m;
  }
  host(name: string): ClusterHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name} in cluster ${this.id} (${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }
  address(n: number): string {
    return `${this.subnet}.${n}`;
  }

  state(): ClusterState {
    return {
      id: this.id,
      dir: this.dir,
      subnet: this.subnet,
      lanNetns: this.lanNetns,
      hosts: HOST_NAMES.slice(0, Math.max(this.plannedHosts, this.hosts.length)).map((name, i) => {
        const n = this.hosts.find((h) => h.name === name);
        return {
          name,
          ip: this.address(11 + i),
          netns: `/run/netns/ferry-${this.id}-${name}`,
          ...(n ? { dir: n.dir, socket: n.socket, dockerdPid: n.pid } : {}),
          ...(n?.ferryd ? { ferryd: { dir: n.ferryd.dir, apiSocket: n.ferryd.apiSocket, pid: n.ferryd.pid } } : {}),
        };
      }),
      ...(this.gluster ? { gluster: this.gluster } : {}),
      ...(this.swarmUp ? { swarm: true } : {}),
    };
  }
  plannedHosts = 0;

  async record(): Promise<void> {
    if (this.onState) await this.onState(this.state());
  }

  async attachNetns(suffix: string, n: number): Promise<string> {
    const name = `ferry-${this.id}-${suffix}`;
    const ns = `/run/netns/${name}`;
    // veth names live only inside the LAN namespace and the new one: no clash with the machine's interfaces
    const port = `v${suffix}`.slice(0, 15);
    await runOk('ip', ['netns', 'add', name]);
    this.extraNetns.push(name);
    await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await runOk('ip', ['-n', `ferry-${this.id}-lan`, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    await runOk('ip', ['-n', `ferry-${this.id}-lan`, 'link', 'set', port, 'master', 'br0', 'up']);
    await runOk('ip', ['-n', name, 'addr', 'add', `${this.address(n)}/24`, 'dev', 'eth0']);
    await runOk('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    return ns;
  }

  async makeLan(): Promise<void> {
    const lan = `ferry-${this.id}-lan`;
    await runOk('ip', ['netns', 'add', lan]);
    await runOk('ip', ['-n', lan, 'link', 'set', 'lo', 'up']);
    await runOk('ip', ['-n', lan, 'link', 'add', 'br0', 'type', 'bridge']);
    await runOk('ip', ['-n', lan, 'link', 'set', 'br0', 'up']);
  }

  async addHost(i: number, dockerdArgs: string[]): Promise<void> {
    const name = HOST_NAMES[i]!;
    const ip = this.address(11 + i);
    const netns = await this.attachNetns(name, 11 + i);
    const engine = await startDockerHost({
      name: `${this.id}-${name}`,
      dir: join(this.dir, name),
      cgroupParent: `/ferry-dh-${this.id}-${name}`,
      // a GlusterFS (FUSE) client mounted on this host, e.g. by ferryd, logs to /var/log/glusterfs/MOUNTPOINT.log
      privateDirs: HOST_PRIVATE_DIRS,
      network: { netns, ip: `${ip}/24` },
      hostname: name,
      keepOnExit: this.keepOnExit,
      dockerdArgs,
    });
    this.hosts.push(new Node(name, ip, netns, engine, this));
    this.hosts.sort((a, b) => a.name.localeCompare(b.name));
    await this.record();
  }

  async swarm(): Promise<SwarmTimes> {
    const t0 = Date.now();
    await Promise.all(
      this.hosts
        .filter((h) => h.ferryd?.running)
        .map(async (h) => {
          await until(`${h.name} ferry plugin socket`, async () => existsSync(join(h.pluginDir, 'ferry.sock')), 30_000);
          await h.dockerOk(['volume', 'ls', '-q'], { timeoutMs: 60_000 });
        }),
    );
    const t1 = Date.now();
    const m = this.manager;
    await m.dockerOk(['swarm', 'init', '--advertise-addr', m.ip], { timeoutMs: 60_000 });
    this.swarmUp = true;
    await this.record();
    const t2 = Date.now();
    const token = (await m.dockerOk(['swarm', 'join-token', '-q', 'worker'])).trim();
    await Promise.all(this.hosts.slice(1).map((h) => h.dockerOk(['swarm', 'join', '--advertise-addr', h.ip, '--token', token, `${m.ip}:2377`], { timeoutMs: 90_000 })));
    await until(
      `${this.hosts.length} Swarm nodes Ready`,
      async () => {
        const r = await m.docker(['node', 'ls', '--format', '{{.Hostname}} {{.Status}}']);
        const ready = r.stdout.split('\n').filter((l) => / Ready$/.test(l.trim())).length;
        return ready === this.hosts.length;
      },
      60_000,
    );
    return { activateMs: t1 - t0, initMs: t2 - t1, joinMs: Date.now() - t2 };
  }

  async waitForTask(service: string, host: string, timeoutMs = 120_000): Promise<string> {
    const h = this.host(host);
    let last = '';
    try {
      return await until(
        `a running task of ${service} on ${host}`,
        async () => {
          const ps = await this.manager.docker(['service', 'ps', service, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}} {{.Error}}']);
          last = ps.stdout.trim() + ps.stderr.trim();
          // give up early when Swarm keeps rejecting the task (e.g. the volume driver refuses the mount)
          const all = await this.manager.docker(['service', 'ps', service, '--format', '{{.CurrentState}} {{.Error}}']);
          if (all.stdout.split('\n').filter((l) => l.startsWith('Rejected')).length >= 3) throw new Error(`tasks of ${service} rejected: ${all.stdout.trim()}`);
          if (!ps.stdout.split('\n').some((l) => l.startsWith(`${host} Running`))) return false;
          const id = (await h.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`, '--filter', 'status=running'])).stdout.trim().split('\n')[0];
          return id || false;
        },
        timeoutMs,
        200,
      );
    } catch (e) {
      const all = await this.manager.docker(['service', 'ps', '--no-trunc', service]);
      throw new Error(`${String(e)}; last: ${last}\n${all.stdout}${all.stderr}`);
    }
  }

  addCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  async noteGluster(g: ClusterState['gluster']): Promise<void> {
    this.gluster = g;
    await this.record();
  }

  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  /** Synchronous, for process.on('exit'): SIGTERM our ferryds and glusterd (DockerHost stops its engines). */
  terminateOnExit(): void {
    for (const h of this.hosts) if (h.ferryd?.running) killQuiet(h.ferryd.pid, 'SIGTERM');
    if (this.gluster?.pid) killQuiet(this.gluster.pid, 'SIGTERM');
  }

  private async teardown(): Promise<void> {
    liveClusters.delete(this);
    const errors: string[] = [];
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        errors.push(String(e));
      }
    }
    const running = this.hosts.filter((h) => h.pid > 0);
    if (this.swarmUp) {
      await Promise.all(running.slice(1).map((h) => h.docker(['swarm', 'leave', '--force'], { timeoutMs: 30_000 })));
      if (running[0]) await running[0].docker(['swarm', 'leave', '--force'], { timeoutMs: 30_000 });
    }
    await Promise.all(this.hosts.map((h) => h.ferryd?.stop().catch((e) => errors.push(String(e)))));
    await Promise.all(this.hosts.map((h) => h.engine.stop().catch((e) => errors.push(String(e)))));
    errors.push(...(await sweepCluster({ id: this.id, dir: this.dir }, { polite: false })));
    if (errors.length) throw new Error(`cluster ${this.id}: teardown problems: ${errors.join('; ')}`);
  }
}

/**
 * Best effort when a test process exits without stop(): ferryds and glusterd are asked to exit (the
 * engines are by dockerhost.ts). Namespaces and directories stay: `npm run cluster -- down --all`.
 */
const liveClusters = new Set<ClusterImpl>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveClusters) c.terminateOnExit();
  });
}

/**
 * Ids of every cluster of this harness on the machine (running or left over): from `ferry-ID-lan`
 * network namespaces and ferry-cl-ID directories in the given parent directories.
 */
export async function findClusters(parents: string[] = ['/tmp']): Promise<Array<{ id: string; dir: string }>> {
  const found = new Map<string, string>();
  for (const parent of parents) {
    let ents: string[] = [];
    try {
      ents = await readdir(parent);
    } catch {
      continue;
    }
    for (const e of ents) {
      const m = /^ferry-cl-([A-Za-z0-9]+)$/.exec(e);
      if (m) found.set(m[1]!, join(parent, e));
    }
  }
  for (const n of await netnsWithPrefix('ferry-')) {
    const m = /^ferry-([A-Za-z0-9]+)-lan$/.exec(n);
    if (m && !found.has(m[1]!)) found.set(m[1]!, '');
  }
  return [...found].map(([id, dir]) => ({ id, dir }));
}

/** A random 10.X.Y subnet (X in 100..249) not used by any address of the root namespace. */
async function pickSubnet(): Promise<string> {
  const used = (await run('ip', ['-o', '-4', 'addr'])).stdout;
  for (;;) {
    const b = randomBytes(2);
    const s = `10.${100 + (b[0]! % 150)}.${b[1]!}`;
    if (!used.includes(` ${s}.`)) return s;
  }
}

/**
 * `docker service create` arguments for SERVICE, pinned to node HOST, with the ferry volume VOLUME at /data:
 * on its first start the task writes 16 MiB of random data and its sha256 (/data/blob, /data/blob.sum),
 * on every start it adds the line `started` to /data/seen, then it sleeps.
 */
export function blobServiceArgs(service: string, volume: string, host: string): string[] {
  return [
    'service', 'create', '--detach', '--name', service, '--no-resolve-image', '--stop-grace-period', '1s',
    '--mount', `type=volume,source=${volume},target=/data,volume-driver=ferry`,
    '--constraint', `node.hostname==${host}`,
    'bb', 'sh', '-c', '[ -f /data/blob ] || { dd if=/dev/urandom of=/data/blob bs=1M count=16 2>/dev/null; sha256sum /data/blob > /data/blob.sum; sync; }; echo started >> /data/seen; exec sleep 3600',
  ];
}

/** Checks what a cluster needs beyond dockerHostPrerequisites(): ip (iproute2) with netns, nsenter. */
export function clusterPrerequisites(): string[] {
  const missing: string[] = [];
  for (const [tool, paths] of Object.entries({ ip: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'], nsenter: ['/usr/bin/nsenter', '/bin/nsenter'] })) {
    if (!paths.some((p) => existsSync(p))) missing.push(tool);
  }
  return missing;
}

/**
 * Starts a LAN and opts.hosts Docker hosts on it (in parallel). On failure everything made so far is
 * removed before the error is thrown.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > HOST_NAMES.length) throw new Error(`hosts must be 1..${HOST_NAMES.length}`);
  const label = (opts.name ?? 'cl').replace(/[^A-Za-z0-9]/g, '').slice(0, 8) || 'cl';
  const parent = opts.parentDir ?? '/tmp';
  await mkdir(parent, { recursive: true });
  let id = '';
  let dir = '';
  for (;;) {
    id = `${label}${randomBytes(2).toString('hex')}`;
    dir = join(parent, `ferry-cl-${id}`);
    if ((await netnsWithPrefix(`ferry-${id}-`)).length) continue;
    try {
      await mkdir(dir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  const c = new ClusterImpl(id, dir, await pickSubnet(), opts.keepOnExit ?? false, opts.onState);
  if (!c.keepOnExit) {
    liveClusters.add(c);
    installExitHook();
  }
  c.plannedHosts = opts.hosts;
  try {
    await c.record();
    await c.makeLan();
    // every host's start is waited for, failed or not, before the clean-up: a host still starting (or still
    // sweeping after its own failure) would otherwise go on after startCluster rejected, into the next test
    const started = await Promise.allSettled(Array.from({ length: opts.hosts }, (_, i) => c.addHost(i, opts.dockerdArgs ?? [])));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (e) {
    await c.stop().catch(() => undefined);
    throw e;
  }
  return c;
}
