/**
 * A private Docker engine for end-to-end tests.
 *
 * Each DockerHost is a dockerd (20.10) running in its own mount and network namespaces, with its own
 * data-root, exec-root, API socket, containerd (dockerd starts one because /run/containerd is an empty
 * tmpfs in its namespace), /etc/docker and /run/docker/plugins. Nothing of the machine's own engine is
 * touched: not /var/run/docker.sock, not /run/docker/plugins, not /etc/docker, not the root network
 * namespace. Several hosts can run at once.
 *
 * Plugin discovery: a socket created (from the root namespace) as `${pluginDir}/NAME.sock` is what this
 * engine sees as /run/docker/plugins/NAME.sock; a spec file `${dir}/etc-docker/plugins/NAME.spec` is its
 * /etc/docker/plugins/NAME.spec.
 *
 * Mount caveat: the engine's namespace is `--propagation private`, so a mount made in the root namespace
 * AFTER the engine started (FUSE, loop, bind, tmpfs) is NOT visible to the engine (checked: it sees the
 * empty directory underneath); plain directories and files are. A plugin that mounts things must run
 * inside the engine's mount namespace (`nsenter -t ${host.pid} -m -- ...`), and restart() gives the
 * engine a NEW namespace, so such a plugin must be restarted with it.
 *
 * Not supported: --live-restore (restart() gives the engine fresh namespaces).
 *
 * LAN mode (for multi-host tests, see cluster.ts): with `network: { netns, ip }` the engine does not get a
 * fresh, empty network namespace but runs in the given pre-made one (`/run/netns/X`, with an interface
 * holding `ip`), and dockerd gets `--swarm-default-advertise-addr` that address. With `hostname` it also
 * gets its own UTS namespace with that hostname (what Swarm reports as node.hostname). `exec()`/`spawn()`
 * run a program inside the engine's mount, network and UTS namespaces (`nsenter -t PID -m -n -u`): that is
 * where a plugin daemon of this host must run, and where it must mount things.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, readdir, readlink, rm, rmdir, symlink, writeFile, copyFile } from 'node:fs/promises';
import { request } from 'node:http';
import { basename, delimiter, join } from 'node:path';
import { cgroupDirs, killQuiet, mountsUnder, pidsInCgroups, pidsInNamespaces, procStat } from './reap.js';

/** Result of a command run by DockerHost.docker()/compose(). `timedOut` is set when it was killed at timeoutMs. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
}

/** Options of DockerHost.docker()/dockerOk(): stdin text, timeout (default 120 s), extra environment, working dir. */
export interface CommandOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** Options of DockerHost.compose(): as CommandOptions, cwd required (where docker-compose.yml is), optional -p name. */
export interface ComposeOptions extends CommandOptions {
  cwd: string;
  projectName?: string;
}

/** Options of startDockerHost(). */
export interface DockerHostOptions {
  /** Short label, part of the instance directory name (/tmp/ferry-dh-NAME-XXXXXX) and of the cgroup parent. */
  name?: string;
  /** Extra dockerd flags, e.g. ['--debug']. */
  dockerdArgs?: string[];
  /**
   * LAN mode: run the engine in this pre-made network namespace (path, e.g. /run/netns/X) instead of a
   * fresh empty one; `ip` (CIDR, e.g. '10.1.2.11/24') is the address it has there, used as the Swarm
   * advertise address. The caller creates and deletes the namespace; stop() kills what is left in it.
   */
  network?: { netns: string; ip: string };
  /** Own UTS namespace with this hostname (Swarm's node.hostname). Without it the machine's hostname is shared. */
  hostname?: string;
  /** Where the instance directory is made (default /tmp). */
  parentDir?: string;
  /**
   * Use exactly this instance directory (created; must not exist) instead of parentDir/ferry-dh-NAME-XXXXXX.
   * Keep it short: containerd's sockets under DIR/exec/containerd/ must stay within 104 bytes.
   */
  dir?: string;
  /** cgroup parent of the containers (default /BASENAME-OF-DIR); must be unique among running engines. */
  cgroupParent?: string;
  /**
   * Machine directories to replace, in the engine's mount namespace, by empty private ones (DIR/private/PATH),
   * e.g. /var/log/glusterfs so that a FUSE client started there logs into the instance dir. Only those
   * that exist are replaced.
   */
  privateDirs?: string[];
  /** Do not SIGTERM the engine when this process exits (for a tool that leaves engines running). */
  keepOnExit?: boolean;
}

/** Options of DockerHost.exec(): as CommandOptions. */
export type ExecOptions = CommandOptions;

/** A running private Docker engine. */
export interface DockerHost {
  /** Instance directory (temp): holds data/, exec/, plugins/, etc-docker/, docker.sock, dockerd.log. */
  readonly dir: string;
  /** The directory bind-mounted on /run/docker/plugins inside the engine's namespace. */
  readonly pluginDir: string;
  /** Path of the engine's API socket. */
  readonly socket: string;
  /** 'unix://' + socket, for DOCKER_HOST. */
  readonly host: string;
  /** dockerd pid (changes on restart()). */
  readonly pid: number;
  /** cgroup parent of this engine's containers (unique per instance). */
  readonly cgroupParent: string;
  /** LAN mode: the engine's address (without prefix length), else undefined. */
  readonly ip: string | undefined;
  /** The hostname given to startDockerHost(), else undefined. */
  readonly hostname: string | undefined;
  /**
   * Runs CMD ARGS inside the engine's mount, network and UTS namespaces (`nsenter -t PID -m -n -u`),
   * collecting its output; never throws on a non-zero exit. The engine must be running.
   */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<CommandResult>;
  /** Like exec() but throws on a non-zero exit; returns stdout. */
  execOk(cmd: string, args: string[], opts?: ExecOptions): Promise<string>;
  /** Spawns CMD ARGS inside the engine's namespaces (as exec()) and returns the child (nsenter execs it: same pid). */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs `docker -H host ARGS`; never throws on a non-zero exit (rejects only if docker cannot be spawned). */
  docker(args: string[], opts?: CommandOptions): Promise<CommandResult>;
  /** Like docker(), but throws an Error with args, exit code and stderr on failure; returns stdout. */
  dockerOk(args: string[], opts?: CommandOptions): Promise<string>;
  /** Runs `docker-compose [-p projectName] ARGS` in opts.cwd with DOCKER_HOST set to this engine. */
  compose(args: string[], opts: ComposeOptions): Promise<CommandResult>;
  /**
   * Stops dockerd gracefully (SIGTERM, waits for exit) and starts it again on the same dirs; resolves when it
   * answers (within readyTimeoutMs, default 30 s: an engine whose plugins are missing takes ~15 s per volume
   * and per container to give up on them).
   */
  restart(opts?: { readyTimeoutMs?: number }): Promise<void>;
  /**
   * A power loss: SIGKILLs dockerd, containerd, the shims and every container of this engine at once, so nothing
   * stops gracefully and no Unmount reaches a plugin. The engine stays down until boot().
   */
  powerOff(): Promise<void>;
  /** Starts dockerd again on the same dirs after powerOff(), as a reboot does: restart policies apply. */
  boot(opts?: { readyTimeoutMs?: number }): Promise<void>;
  /**
   * Removes all containers, stops dockerd (SIGTERM, SIGKILL after 20 s), kills whatever is left in its
   * namespaces or cgroup, unmounts what is left under dir, removes the cgroups and dir. Safe to call twice.
   */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 20_000;
const DEFAULT_CMD_TIMEOUT_MS = 120_000;
const DEFAULT_COMPOSE_TIMEOUT_MS = 300_000;

/** Applets the bb image must have (checked against `busybox --list`; all listed applets get a link). */
const REQUIRED_APPLETS = [
  'sh', 'cat', 'echo', 'ls', 'mkdir', 'sleep', 'dd', 'sha256sum', 'rm', 'touch', 'wc', 'head', 'tail', 'stat',
  'sync', 'cp', 'mv', 'find', 'grep', 'seq', 'test', 'hostname', 'id', 'chown', 'chmod', 'date', 'du', 'md5sum',
  'tr', 'cut', 'sort', 'uniq', 'true', 'false',
];

/** Finds an executable: the preferred absolute paths first, then PATH. */
function findExecutable(name: string, preferred: string[] = []): string | undefined {
  const candidates = [...preferred, ...(process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    .split(delimiter)
    .filter((d) => d !== '')
    .map((d) => join(d, name))];
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

const tools = () => ({
  dockerd: findExecutable('dockerd', ['/usr/sbin/dockerd']),
  docker: findExecutable('docker', ['/usr/local/bin/docker']),
  unshare: findExecutable('unshare'),
  nsenter: findExecutable('nsenter'),
  busybox: findExecutable('busybox', ['/bin/busybox']),
  tar: findExecutable('tar'),
  mount: findExecutable('mount', ['/bin/mount', '/usr/bin/mount']),
  umount: findExecutable('umount', ['/bin/umount', '/usr/bin/umount']),
});

/**
 * Synchronous check that this machine can run a DockerHost: root, dockerd, docker client, unshare,
 * busybox, tar, mount/umount. (docker-compose is only needed by compose() and is not checked.)
 */
export function dockerHostPrerequisites(): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root (uid 0)');
  for (const [name, path] of Object.entries(tools())) if (!path) missing.push(name);
  return { ok: missing.length === 0, missing };
}

/**
 * Runs inside `unshare --mount --net --propagation private` (LAN mode: `nsenter --net=NETNS unshare
 * --mount [--uts] ...`): $1 instance dir, $2 dockerd, $3 cgroup parent, $4 hostname or '' (only set when
 * the engine has its own UTS namespace), $5 space-separated privateDirs, then extra dockerd args.
 * Everything it mounts lives and dies with this namespace. If
 * /etc/docker or /opt/containerd (made by containerd's "opt" plugin) do not exist on this machine, their
 * parent is shadowed (in this namespace only) by a tmpfs holding bind mounts of its entries, so that
 * nothing is ever created on the machine's own filesystem. /run is always shadowed that way, without the
 * machine's docker and containerd entries: each host has a /run of its own. Every
 * mount/umount uses -n: util-linux would otherwise create /run/mount/utab on the machine's /run.
 */
const NAMESPACE_SCRIPT = String.raw`
set -eu
D=$1 DOCKERD=$2 CGP=$3 HN=$4 PRIVATE_DIRS=$5
shift 5
# own UTS namespace (LAN mode): the hostname Swarm reports
if [ -n "$HN" ]; then echo "$HN" > /proc/sys/kernel/hostname; fi

shadow() {  # shadow DIR SKIP...
  p=$1; shift
  o="$D/.shadow"
  mkdir -p "$o"
  mount -n --rbind "$p" "$o"
  mount -n -t tmpfs -o "mode=$(stat -c %a "$o")" tmpfs "$p"
  for e in "$o"/* "$o"/.[!.]* "$o"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=$(basename "$e")
    for s in "$@"; do [ "$n" = "$s" ] && continue 2; done
    if [ -L "$e" ]; then cp -P "$e" "$p/$n"
    elif [ -d "$e" ]; then mkdir "$p/$n"; mount -n --rbind "$e" "$p/$n"
    else : > "$p/$n"; mount -n --bind "$e" "$p/$n"
    fi
  done
  umount -n -l "$o"
  rmdir "$o"
}

# private network namespace: loopback up, a sysfs that belongs to it (keeping the cgroup mounts)
ip link set lo up 2>/dev/null || busybox ip link set lo up 2>/dev/null || true
mkdir -p "$D/.cg"
mount -n --rbind /sys/fs/cgroup "$D/.cg"
mount -n -t sysfs sysfs /sys
mount -n --move "$D/.cg" /sys/fs/cgroup
rmdir "$D/.cg"

# a private /run, always: a machine's /run/docker removed by something else (rmdir of a mount point
# detaches the mounts on it in every namespace) took /run/docker/plugins away from every simulated host
shadow /run docker containerd docker.sock docker.pid containerd.sock
mkdir /run/docker /run/containerd
mount -n -t tmpfs -o mode=0755 tmpfs /run/docker
mkdir /run/docker/plugins
mount -n --bind "$D/plugins" /run/docker/plugins
mount -n -t tmpfs -o mode=0755 tmpfs /run/containerd

if [ ! -d /etc/docker ]; then
  shadow /etc docker
  mkdir /etc/docker
fi
mount -n --bind "$D/etc-docker" /etc/docker

# directories of the machine that programs of this host must not write to
for p in $PRIVATE_DIRS; do
  [ -d "$p" ] || continue
  mkdir -p "$D/private$p"
  mount -n --bind "$D/private$p" "$p"
done

# containerd's "opt" plugin creates /opt/containerd/{bin,lib}: keep it in this namespace
if [ ! -d /opt/containerd ]; then
  if [ -d /opt ]; then shadow /opt containerd; mkdir /opt/containerd
  else echo "ferry-dh: WARNING: no /opt, containerd will create /opt/containerd on this machine"; fi
fi
if [ -d /opt/containerd ]; then mount -n -t tmpfs -o mode=0711 tmpfs /opt/containerd; fi

echo "ferry-dh: namespace ready, exec dockerd (cgroup parent $CGP)"
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
exec "$DOCKERD" --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/docker.pid" \
  -H "unix://$D/docker.sock" --iptables=false --bridge=none --cgroup-parent "$CGP" \
  --userland-proxy=false "$@"
`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs a program, collecting its output; never throws (a program that cannot be spawned gives code 127). */
export function runQuiet(cmd: string, args: string[], timeoutMs = 60_000): Promise<CommandResult> {
  return run(cmd, args, { timeoutMs }).catch((e: unknown) => ({ code: 127, stdout: '', stderr: String(e) }));
}

/** Runs a program, collecting its output. Rejects only if it cannot be spawned. */
function run(cmd: string, args: string[], opts: CommandOptions & { baseEnv?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...(opts.baseEnv ?? process.env), ...(opts.env ?? {}) };
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env,
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CMD_TIMEOUT_MS;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      const res: CommandResult = {
        code: code ?? (signal ? 128 + signalNumber(signal) : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}\n[dockerhost] ${cmd} killed after ${timeoutMs} ms` : stderr,
      };
      if (timedOut) {
        res.timedOut = true;
        res.code = 124;
      }
      resolve(res);
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {
        /* the program may exit without reading its input */
      });
      child.stdin!.end(opts.input);
    }
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const n = (
    { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 } as Record<string, number>
  )[signal];
  return n ?? 0;
}

/** GET /_ping on the engine socket: true when it answers 200. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', agent: false, timeout: 1000, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function logTail(file: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no dockerd.log)';
  }
}

/** Zombie dockerd/containerd* processes started at or after `since` (orphans that init has not reaped yet). */
async function engineZombies(since: number): Promise<number[]> {
  const found: number[] = [];
  for (const ent of await readdir('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const st = await procStat(Number(ent));
    if (st && st.state === 'Z' && st.start >= since && /^(containerd|dockerd)/.test(st.comm)) found.push(Number(ent));
  }
  return found;
}

/** Builds the bb image rootfs (busybox + links for every applet, /tmp, /etc/passwd) and tars it. */
async function buildBusyboxTar(work: string, busybox: string, tar: string): Promise<string> {
  const root = join(work, 'rootfs');
  for (const d of ['bin', 'usr/bin', 'etc', 'root', 'tmp', 'var/tmp', 'proc', 'sys', 'dev']) await mkdir(join(root, d), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);
  await chmod(join(root, 'var/tmp'), 0o1777);
  await copyFile(busybox, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  const list = await run(busybox, ['--list']);
  const applets = new Set(list.stdout.split('\n').map((s) => s.trim()).filter((s) => s && s !== 'busybox' && !s.includes('/')));
  const missing = REQUIRED_APPLETS.filter((a) => !applets.has(a));
  if (missing.length) throw new Error(`${busybox} lacks applets: ${missing.join(' ')}`);
  for (const a of applets) await symlink('busybox', join(root, 'bin', a));
  await symlink('../../bin/busybox', join(root, 'usr/bin/env'));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  const file = join(work, 'bb.tar');
  const r = await run(tar, ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', file, '.']);
  if (r.code !== 0) throw new Error(`tar of bb rootfs failed: ${r.stderr}`);
  return file;
}

/** Best effort on abnormal exit of the test process: ask every engine still running to shut down. */
const liveHosts = new Set<Host>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const h of liveHosts) h.terminateOnExit();
  });
}

interface Engine {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: boolean;
  ns: Set<string>;
}

class Host implements DockerHost {
  readonly pluginDir: string;
  readonly socket: string;
  readonly host: string;
  readonly cgroupParent: string;
  private engine: Engine | undefined;
  /** Start time (clock ticks after boot) of the first dockerd, to recognise its orphaned zombies. */
  private firstStart: number | undefined;
  private stopping: Promise<void> | undefined;
  private readonly logFile: string;
  private readonly clientEnv: NodeJS.ProcessEnv;

  readonly ip: string | undefined;
  readonly hostname: string | undefined;
  private readonly network: { netns: string; ip: string } | undefined;
  private readonly keepOnExit: boolean;
  private readonly privateDirs: string[];

  constructor(
    readonly dir: string,
    private readonly bin: { dockerd: string; docker: string; unshare: string; nsenter: string },
    private readonly dockerdArgs: string[],
    opts: DockerHostOptions = {},
  ) {
    this.network = opts.network;
    this.ip = opts.network?.ip.split('/')[0];
    this.hostname = opts.hostname;
    this.keepOnExit = opts.keepOnExit ?? false;
    this.privateDirs = opts.privateDirs ?? [];
    this.pluginDir = join(dir, 'plugins');
    this.socket = join(dir, 'docker.sock');
    this.host = `unix://${this.socket}`;
    this.cgroupParent = opts.cgroupParent ?? `/${basename(dir)}`;
    this.logFile = join(dir, 'dockerd.log');
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: this.host, DOCKER_CONFIG: join(dir, 'client-config') };
    for (const k of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_TLS', 'COMPOSE_FILE', 'COMPOSE_PROJECT_NAME']) delete env[k];
    this.clientEnv = env;
  }

  get pid(): number {
    return this.engine?.pid ?? -1;
  }

  private nsenterArgs(cmd: string, args: string[]): string[] {
    const pid = this.pid;
    if (pid <= 0 || !this.engine || this.engine.hasExited) throw new Error(`DockerHost ${this.dir}: the engine is not running`);
    return ['-t', String(pid), '-m', '-n', '-u', '--', cmd, ...args];
  }

  exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<CommandResult> {
    let a: string[];
    try {
      a = this.nsenterArgs(cmd, args);
    } catch (e) {
      return Promise.reject(e);
    }
    return run(this.bin.nsenter, a, opts);
  }

  async execOk(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${JSON.stringify(args)} in ${this.hostname ?? this.dir} exited with ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn(this.bin.nsenter, this.nsenterArgs(cmd, args), opts);
  }

  /** Synchronous, for process.on('exit'): ask a still running dockerd to shut down. */
  terminateOnExit(): void {
    if (this.engine && !this.engine.hasExited) killQuiet(this.engine.pid, 'SIGTERM');
  }

  docker(args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
    return run(this.bin.docker, ['-H', this.host, ...args], { ...opts, baseEnv: this.clientEnv });
  }

  async dockerOk(args: string[], opts: CommandOptions = {}): Promise<string> {
    const r = await this.docker(args, opts);
    if (r.code !== 0) {
      throw new Error(`docker ${JSON.stringify(args)} on ${this.host} exited with ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout;
  }

  compose(args: string[], opts: ComposeOptions): Promise<CommandResult> {
    const compose = findExecutable('docker-compose', ['/usr/bin/docker-compose']);
    if (!compose) return Promise.reject(new Error('docker-compose not found'));
    const pre = opts.projectName ? ['-p', opts.projectName] : [];
    return run(compose, [...pre, ...args], {
      ...opts,
      timeoutMs: opts.timeoutMs ?? DEFAULT_COMPOSE_TIMEOUT_MS,
      baseEnv: this.clientEnv,
    });
  }

  /** Starts dockerd in fresh namespaces and waits until it answers. */
  async launch(readyTimeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const log = await open(this.logFile, 'a');
    let child: ChildProcess;
    try {
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const k of ['NOTIFY_SOCKET', 'DOCKER_HOST', 'DOCKER_CONTEXT']) delete env[k];
      await log.write(`\n===== ferry-dh: starting dockerd at ${new Date().toISOString()} =====\n`);
      const unshareArgs = [
        '--mount', ...(this.network ? [] : ['--net']), ...(this.hostname !== undefined ? ['--uts'] : []), '--propagation', 'private', '--',
        '/bin/sh', '-c', NAMESPACE_SCRIPT, 'ferry-dh', this.dir, this.bin.dockerd, this.cgroupParent, this.hostname ?? '', this.privateDirs.join(' '),
        ...(this.ip ? ['--swarm-default-advertise-addr', this.ip] : []),
        ...this.dockerdArgs,
      ];
      // LAN mode: nsenter joins the pre-made network namespace and execs unshare (same pid all along)
      const [cmd, args] = this.network
        ? [this.bin.nsenter, [`--net=${this.network.netns}`, '--', this.bin.unshare, ...unshareArgs]]
        : [this.bin.unshare, unshareArgs];
      child = spawn(cmd, args, { detached: true, stdio: ['ignore', log.fd, log.fd], env });
    } finally {
      await log.close();
    }
    if (child.pid === undefined) {
      const err = await new Promise<Error>((r) => child.once('error', r));
      throw new Error(`cannot start ${this.bin.unshare}: ${err.message}`);
    }
    child.unref();
    const engine: Engine = { child, pid: child.pid, hasExited: false, ns: new Set(), exited: Promise.resolve() };
    engine.exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        engine.hasExited = true;
        resolve();
      });
    });
    this.engine = engine;
    this.firstStart ??= (await procStat(engine.pid))?.start;
    if (!this.keepOnExit) liveHosts.add(this);

    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (engine.hasExited) {
        throw new Error(`dockerd (pid ${engine.pid}) exited during start-up; ${this.logFile}:\n${await logTail(this.logFile)}`);
      }
      if (engine.ns.size === 0) await this.recordNamespaces(engine);
      if (await ping(this.socket)) break;
      if (Date.now() > deadline) {
        throw new Error(`dockerd (pid ${engine.pid}) did not answer on ${this.socket} within ${readyTimeoutMs} ms; ${this.logFile}:\n${await logTail(this.logFile)}`);
      }
      await sleep(100);
    }
    await this.recordNamespaces(engine);
    if (engine.ns.size === 0) throw new Error(`dockerd (pid ${engine.pid}) is not in its own namespaces`);
    const v = await this.docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: Math.max(5000, deadline - Date.now()) });
    if (v.code !== 0) throw new Error(`docker version failed on ${this.host}: ${v.stderr}\n${await logTail(this.logFile)}`);
  }

  /** Notes the engine's mount and network namespaces once unshare has made them (for the final sweep). */
  private async recordNamespaces(engine: Engine): Promise<void> {
    try {
      const ns: string[] = [];
      for (const kind of ['mnt', 'net']) {
        const mine = await readlink(`/proc/self/ns/${kind}`);
        const its = await readlink(`/proc/${engine.pid}/ns/${kind}`);
        if (its === mine) return; // unshare has not run yet
        ns.push(its);
      }
      for (const n of ns) engine.ns.add(n);
    } catch {
      /* exited; the caller notices */
    }
  }

  /** Waits (with a ref'd timer, so the event loop stays up) until dockerd has exited; false on timeout. */
  private async waitExit(engine: Engine, ms: number): Promise<boolean> {
    if (engine.hasExited) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    try {
      return await Promise.race([engine.exited.then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL. Returns true if the exit was graceful. */
  private async terminate(engine: Engine, graceMs: number): Promise<boolean> {
    if (engine.hasExited) return true;
    killQuiet(engine.pid, 'SIGTERM');
    if (await this.waitExit(engine, graceMs)) return true;
    killQuiet(engine.pid, 'SIGKILL');
    await this.waitExit(engine, 5000);
    return false;
  }

  /** SIGKILLs every process in the given namespaces and this engine's cgroup, until none is left; adds them to `killed`. */
  private async sweep(ns: Set<string>, withCgroup: boolean, killed = new Set<number>()): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const pids = new Set<number>([
        ...(withCgroup ? await pidsInCgroups(await cgroupDirs(this.cgroupParent)) : []),
        ...(await pidsInNamespaces(ns)),
      ]);
      if (pids.size === 0) return;
      if (Date.now() > deadline) throw new Error(`processes of ${this.dir} would not die: ${[...pids].join(' ')}`);
      for (const p of pids) {
        killed.add(p);
        killQuiet(p, 'SIGKILL');
      }
      await sleep(100);
    }
  }

  async restart(opts: { readyTimeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) throw new Error(`DockerHost ${this.dir} is stopped`);
    const engine = this.engine;
    if (engine) {
      const graceful = await this.terminate(engine, STOP_GRACE_MS);
      if (!graceful) await this.sweep(engine.ns, false);
    }
    await this.launch(opts.readyTimeoutMs);
  }

  async powerOff(): Promise<void> {
    const engine = this.engine;
    if (!engine || engine.hasExited) throw new Error(`DockerHost ${this.dir}: dockerd is not running`);
    killQuiet(engine.pid, 'SIGKILL');
    await this.sweep(engine.ns, true);
    await this.waitExit(engine, 5000);
  }

  async boot(opts: { readyTimeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) throw new Error(`DockerHost ${this.dir} is stopped`);
    if (this.engine && !this.engine.hasExited) throw new Error(`DockerHost ${this.dir}: dockerd is running; powerOff() first`);
    // the exec root plays /run, a tmpfs that a reboot empties (a stale containerd socket there stops containerd)
    const exec = join(this.dir, 'exec');
    for (const e of await readdir(exec)) await rm(join(exec, e), { recursive: true, force: true });
    await this.launch(opts.readyTimeoutMs);
  }

  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    const errors: string[] = [];
    const engine = this.engine;
    // dockerd, its containerd and the shims: waited for below until they are reaped, not only dead
    const ours = new Set<number>(engine ? await pidsInNamespaces(engine.ns) : []);
    if (engine && !engine.hasExited) {
      try {
        const ps = await this.docker(['ps', '-aq'], { timeoutMs: 30_000 });
        const ids = ps.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
        if (ids.length) {
          const r = await this.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
          if (r.code !== 0) errors.push(`docker rm -f: ${r.stderr.trim()}`);
        }
      } catch (e) {
        errors.push(String(e));
      }
    }
    if (engine && !engine.hasExited) await this.terminate(engine, STOP_GRACE_MS);
    try {
      await this.sweep(engine?.ns ?? new Set(), true, ours);
    } catch (e) {
      errors.push(String(e));
    }
    liveHosts.delete(this);
    // Orphans (shims) are reaped by init, which may take a couple of seconds: wait so that no
    // <defunct> containerd-shim is left when stop() resolves.
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
      if ([...ours].some((p) => existsSync(`/proc/${p}`))) continue;
      if (this.firstStart === undefined || (await engineZombies(this.firstStart)).length === 0) break;
    }
    for (let i = 0; i < 20; i++) {
      const dirs = await cgroupDirs(this.cgroupParent);
      if (dirs.length === 0) break;
      for (const d of dirs) await rmdir(d).catch(() => undefined);
      if (i > 0) await sleep(100);
    }
    const leftCg = await cgroupDirs(this.cgroupParent);
    if (leftCg.length) errors.push(`cgroups not removed: ${leftCg.join(' ')}`);
    const umount = findExecutable('umount', ['/bin/umount', '/usr/bin/umount']) ?? 'umount';
    for (const mp of await mountsUnder(this.dir)) {
      const r = await run(umount, ['-n', mp]);
      if (r.code !== 0) await run(umount, ['-n', '-l', mp]);
    }
    const leftMounts = await mountsUnder(this.dir);
    if (leftMounts.length) errors.push(`still mounted: ${leftMounts.join(' ')}`);
    try {
      await rm(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (e) {
      errors.push(`rm ${this.dir}: ${String(e)}`);
    }
    if (errors.length) throw new Error(`DockerHost.stop(${this.dir}): ${errors.join('; ')}`);
  }
}

/**
 * Creates /tmp/ferry-dh-[NAME-]XXXXXX, starts a private dockerd in it, waits until `docker version`
 * answers (30 s, dockerd.log tail in the error) and imports the busybox image as `bb:latest` (bin/busybox
 * with a link for every applet incl. sh cat echo ls mkdir sleep dd sha256sum ... true false; /tmp,
 * /etc/passwd). On failure everything it made is torn down before the error is thrown.
 */
export async function startDockerHost(opts: DockerHostOptions = {}): Promise<DockerHost> {
  const pre = dockerHostPrerequisites();
  if (!pre.ok) throw new Error(`cannot start a private Docker engine, missing: ${pre.missing.join(', ')}`);
  const t = tools();
  const label = (opts.name ?? '').replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 20);
  if (opts.network && !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(opts.network.ip)) throw new Error(`network.ip must be an IPv4 CIDR, got ${opts.network.ip}`);
  if (opts.network && !existsSync(opts.network.netns)) throw new Error(`network namespace ${opts.network.netns} does not exist`);
  if (opts.hostname !== undefined && !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(opts.hostname)) throw new Error(`bad hostname ${JSON.stringify(opts.hostname)}`);
  for (const p of opts.privateDirs ?? []) if (!/^\/[A-Za-z0-9_./-]+$/.test(p) || p.split('/').includes('..')) throw new Error(`privateDirs: bad path ${p}`);
  let dir: string;
  if (opts.dir) {
    dir = opts.dir;
    await mkdir(dir);
  } else {
    dir = await mkdtemp(join(opts.parentDir ?? '/tmp', label ? `ferry-dh-${label}-` : 'ferry-dh-'));
  }
  const longest = join(dir, 'exec', 'containerd', 'containerd-debug.sock');
  if (Buffer.byteLength(longest) > 104) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`instance directory ${dir} is too long: containerd's ${longest} would exceed the 104-byte unix socket path limit`);
  }
  await chmod(dir, 0o755);
  for (const d of ['data', 'exec', 'plugins', 'etc-docker', 'client-config']) await mkdir(join(dir, d));
  installExitHook();
  const host = new Host(dir, { dockerd: t.dockerd!, docker: t.docker!, unshare: t.unshare!, nsenter: t.nsenter! }, opts.dockerdArgs ?? [], opts);
  try {
    const work = join(dir, 'bb-image');
    await mkdir(work);
    const [tarFile] = await Promise.all([buildBusyboxTar(work, t.busybox!, t.tar!), host.launch()]);
    await host.dockerOk(['import', '--message', 'busybox for ferry tests', tarFile, 'bb:latest']);
    await rm(work, { recursive: true, force: true });
  } catch (e) {
    await host.stop().catch(() => undefined);
    throw e;
  }
  return host;
}
