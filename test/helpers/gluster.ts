/**
 * A GlusterFS server on a cluster's LAN (see cluster.ts), for shared-pool tests.
 *
 * glusterd runs in its own network namespace `ferry-ID-gluster`, attached to the cluster's bridge with
 * address 10.X.Y.254, and in its own mount namespace where /run is a fresh tmpfs and /var/lib/glusterd
 * (its working directory: peers, volume definitions, glusterd.info) and /var/log/glusterfs are bind mounts
 * of directories under the cluster dir: nothing of the machine's own Gluster state is read or written, and
 * all of it goes with the cluster. The brick (a directory under the cluster dir) is addressed by the LAN
 * address (`10.X.Y.254:/path`): that works because the address is local to glusterd's namespace (the CLI
 * refuses only 127.0.0.1/localhost bricks). One brick, volume gv0, created with `force` (a brick on the
 * root file system is refused otherwise), then started.
 *
 * Every host mounts it from its own namespaces: `mount -n -t glusterfs -o log-file=F 10.X.Y.254:/gv0 DIR`
 * (mount(host)). Without `log-file=` the FUSE client logs to /var/log/glusterfs/DIR.log of the machine;
 * without -n util-linux writes /run/mount/utab on the machine's /run.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { cp, mkdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { Cluster, ClusterHost } from './cluster.js';
import { runQuiet, type CommandResult } from './dockerhost.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Gluster {
  /** 'IP:/gv0', what `mount -t glusterfs` takes. */
  readonly device: string;
  readonly ip: string;
  readonly volume: string;
  readonly brick: string;
  readonly dir: string;
  /** glusterd pid. */
  readonly pid: number;
  /** Runs `gluster --mode=script ARGS` against this server. */
  cli(args: string[]): Promise<CommandResult>;
  /** Mounts the volume inside HOST's namespaces at mountpoint (default HOSTDIR/mnt/gv0, created); returns it. */
  mount(host: ClusterHost, mountpoint?: string): Promise<string>;
  unmount(host: ClusterHost, mountpoint: string): Promise<void>;
  /** Unmounts every mount made with mount(), stops the volume and glusterd, removes its dirs and netns. Safe twice. */
  stop(): Promise<void>;
}

export interface GlusterOptions {
  /** Last octet of the server's LAN address (default 254). */
  octet?: number;
  volume?: string;
  /**
   * 'defaults' (default): GlusterFS's own, whose client caches answer a lookup, or a small file's content, for up to
   * a second after another client changed it; 'coherent': those caches off (GLUSTER_COHERENT_OPTIONS, see
   * docs/shared-pools.md: the soak on them read old file content across hosts, not yet understood).
   */
  cache?: 'coherent' | 'defaults';
}

/** GlusterFS volume options that take the client's own caches out (docs/shared-pools.md, GlusterFS). */
export const GLUSTER_COHERENT_OPTIONS: ReadonlyArray<readonly [string, string]> = [
  ['performance.stat-prefetch', 'off'],
  ['performance.quick-read', 'off'],
  ['performance.open-behind', 'off'],
];

const GLUSTERD = ['/usr/sbin/glusterd', '/sbin/glusterd'];
const GLUSTER = ['/usr/sbin/gluster', '/sbin/gluster'];
const MOUNT_HELPER = ['/sbin/mount.glusterfs', '/usr/sbin/mount.glusterfs'];

/** What startGluster() needs: glusterd, gluster, mount.glusterfs (apt-get install glusterfs-server glusterfs-client), /dev/fuse. */
export function glusterPrerequisites(): string[] {
  const missing: string[] = [];
  if (!GLUSTERD.some(existsSync)) missing.push('glusterd (glusterfs-server)');
  if (!GLUSTER.some(existsSync)) missing.push('gluster CLI (glusterfs-server)');
  if (!MOUNT_HELPER.some(existsSync)) missing.push('mount.glusterfs (glusterfs-client)');
  if (!existsSync('/dev/fuse')) missing.push('/dev/fuse');
  if (!existsSync('/var/lib/glusterd')) missing.push('/var/lib/glusterd (glusterfs-server)');
  return missing;
}

const run = runQuiet;

/**
 * In glusterd's new mount namespace: $1 dir. /run becomes an empty tmpfs (glusterd.socket, pid files,
 * brick sockets stay in it), /var/lib/glusterd and /var/log/glusterfs are our directories.
 */
const SERVER_SCRIPT = String.raw`
set -eu
D=$1
mount -n -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/gluster /run/lock
mount -n --bind "$D/lib" /var/lib/glusterd
mount -n --bind "$D/log" /var/log/glusterfs
exec glusterd -N -l "$D/log/glusterd.log"
`;

/** True when pid has exec'd glusterd in a mount namespace of its own. */
async function isGlusterd(pid: number): Promise<boolean> {
  try {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    return comm === 'glusterd' && (await readlink(`/proc/${pid}/ns/mnt`)) !== (await readlink('/proc/self/ns/mnt'));
  } catch {
    return false;
  }
}

/** Starts glusterd on the cluster's LAN, creates and starts the volume; registered for cluster.stop(). */
export async function startGluster(cluster: Cluster, opts: GlusterOptions = {}): Promise<Gluster> {
  const missing = glusterPrerequisites();
  if (missing.length) throw new Error(`cannot start GlusterFS, missing: ${missing.join(', ')}`);
  const octet = opts.octet ?? 254;
  const volume = opts.volume ?? 'gv0';
  const coherent = opts.cache === 'coherent';
  const ip = cluster.address(octet);
  const dir = join(cluster.dir, 'gluster');
  const brick = join(dir, 'brick');
  for (const d of ['lib', 'log', 'brick']) await mkdir(join(dir, d), { recursive: true });
  // glusterd wants its hooks and groups (shipped in /var/lib/glusterd) in the working directory
  await cp('/var/lib/glusterd', join(dir, 'lib'), { recursive: true });
  const mounts: Array<{ host: ClusterHost; mp: string }> = [];
  let pid = -1;
  let stopping: Promise<void> | undefined;
  const netnsName = `ferry-${cluster.id}-gluster`;

  // Only once glusterd runs (after SERVER_SCRIPT made its mounts): entered earlier, nsenter would put the
  // CLI in the machine's mount namespace (its /run/glusterd.socket, /var/log/glusterfs/cli.log).
  const cli = async (args: string[]): Promise<CommandResult> => {
    if (!(await isGlusterd(pid))) return { code: 125, stdout: '', stderr: `glusterd (pid ${pid}) is not running (yet)` };
    return run('nsenter', ['-t', String(pid), '-m', '-n', '--', GLUSTER.find(existsSync)!, `--log-file=${join(dir, 'log', 'cli.log')}`, '--mode=script', ...args], 120_000);
  };
  const cliOk = async (args: string[]) => {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`gluster ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  };

  const self: Gluster = {
    device: `${ip}:/${volume}`,
    ip,
    volume,
    brick,
    dir,
    get pid() {
      return pid;
    },
    cli,
    async mount(host, mountpoint) {
      const mp = mountpoint ?? join(host.dir, 'mnt', volume);
      await mkdir(mp, { recursive: true });
      const log = join(dir, 'log', `client-${host.name}-${mounts.length}.log`);
      await host.execOk('mount', ['-n', '-t', 'glusterfs', '-o', `log-file=${log}`, self.device, mp], { timeoutMs: 60_000 });
      mounts.push({ host, mp });
      return mp;
    },
    async unmount(host, mp) {
      const r = await host.exec('umount', ['-n', mp], { timeoutMs: 60_000 });
      if (r.code !== 0) await host.exec('umount', ['-n', '-l', mp], { timeoutMs: 60_000 });
      const i = mounts.findIndex((m) => m.host === host && m.mp === mp);
      if (i >= 0) mounts.splice(i, 1);
    },
    stop() {
      stopping ??= (async () => {
        const errors: string[] = [];
        for (const m of [...mounts].reverse()) {
          if (m.host.pid <= 0) continue;
          await self.unmount(m.host, m.mp).catch((e) => errors.push(String(e)));
        }
        if (await isGlusterd(pid)) await cli(['volume', 'stop', volume, 'force']);
        // glusterd, glusterfsd (brick) and any helper are all in the netns: kill them
        for (let i = 0; i < 100; i++) {
          const pids = (await run('ip', ['netns', 'pids', netnsName])).stdout.split('\n').map(Number).filter((p) => p > 1);
          if (pids.length === 0) break;
          for (const p of pids) {
            try {
              process.kill(p, i < 20 ? 'SIGTERM' : 'SIGKILL');
            } catch {
              /* gone */
            }
          }
          await sleep(100);
        }
        if (existsSync(`/run/netns/${netnsName}`)) {
          const r = await run('ip', ['netns', 'del', netnsName]);
          if (r.code !== 0) errors.push(`ip netns del ${netnsName}: ${r.stderr.trim()}`);
        }
        await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }).catch((e) => errors.push(String(e)));
        if (errors.length) throw new Error(`gluster stop: ${errors.join('; ')}`);
      })();
      return stopping;
    },
  };
  cluster.addCleanup(() => self.stop());

  const netns = await cluster.attachNetns('gluster', octet);
  const errFile = join(dir, 'log', 'glusterd.stderr');
  const fd = openSync(errFile, 'a');
  let child;
  try {
    child = spawn('nsenter', [`--net=${netns}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', SERVER_SCRIPT, 'ferry-gluster', dir], {
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  child.unref();
  child.once('error', () => undefined);
  pid = child.pid ?? -1;
  if (pid <= 0) throw new Error('cannot spawn glusterd');
  await cluster.noteGluster({ netns, ip, dir, device: self.device, pid });
  const logs = async () => `${await readFile(errFile, 'utf8').catch(() => '')}\n${await readFile(join(dir, 'log', 'glusterd.log'), 'utf8').catch(() => '')}`;
  // ready when the CLI answers through glusterd.socket
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!existsSync(`/proc/${pid}`)) throw new Error(`glusterd exited:\n${await logs()}`);
    if ((await cli(['volume', 'list'])).code === 0) break;
    if (Date.now() > deadline) throw new Error(`glusterd did not answer in 60 s:\n${await logs()}`);
    await sleep(200);
  }
  await cliOk(['volume', 'create', volume, `${ip}:${brick}`, 'force']);
  if (coherent) for (const [k, v] of GLUSTER_COHERENT_OPTIONS) await cliOk(['volume', 'set', volume, k, v]);
  await cliOk(['volume', 'start', volume]);
  return self;
}

/** The ferry.yaml of a cluster host whose default pool `nas` is this GlusterFS volume, mounted by its ferryd at POOL. */
export function glusterPoolConfig(node: string, pool: string, g: Pick<Gluster, 'device'>, timing: string[] = ['heartbeatInterval: 500ms', 'nodeTimeout: 3s']): string {
  return [`node: ${node}`, ...timing, 'defaultPool: nas', 'pools:', '  nas:', `    path: ${pool}`, '    shared: true', '    mount:', '      type: glusterfs', `      device: "${g.device}"`].join('\n');
}
