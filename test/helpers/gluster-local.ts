/**
 * A GlusterFS server for tests without Docker hosts: startGluster() (gluster.ts) on a stand-in for a
 * cluster, whose only network is the loopback of glusterd's own namespace (brick and clients at 127.0.0.2).
 * The volume is mounted from that namespace into this machine's mount namespace (`nsenter --net`), so a
 * ferryd started by the test sees it; the FUSE client (glusterfs) therefore runs in that namespace too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Cluster, ClusterHost } from './cluster.js';
import { startGluster, type Gluster, type GlusterOptions } from './gluster.js';
import { runQuiet as run } from './dockerhost.js';

async function runOk(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
}

export interface LocalGluster {
  gluster: Gluster;
  netns: string;
  /** Mounts the volume at `mp` in this machine's mount namespace. */
  mount(mp: string): Promise<void>;
  unmount(mp: string): Promise<void>;
  /** Pids in the server's namespace whose command is one of `names` (glusterd, glusterfsd, glusterfs). */
  pids(names: string[]): Promise<number[]>;
  stop(): Promise<void>;
}

export async function startLocalGluster(opts: Pick<GlusterOptions, 'cache'> = {}): Promise<LocalGluster> {
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'ferry-gl-'));
  const netnsName = `ferry-${id}-gluster`;
  const cleanups: Array<() => Promise<void>> = [];
  const stand = {
    id,
    dir,
    address: () => '127.0.0.2',
    addCleanup: (fn: () => Promise<void>) => void cleanups.push(fn),
    async attachNetns() {
      await runOk('ip', ['netns', 'add', netnsName]);
      await runOk('ip', ['-n', netnsName, 'link', 'set', 'lo', 'up']);
      return `/run/netns/${netnsName}`;
    },
    async noteGluster() {},
  } as unknown as Cluster;
  const here = {
    name: 'local',
    dir,
    pid: process.pid,
    exec: (cmd: string, args: string[], o?: { timeoutMs?: number }) => run('nsenter', [`--net=/run/netns/${netnsName}`, '--', cmd, ...args], o?.timeoutMs),
    async execOk(cmd: string, args: string[], o?: { timeoutMs?: number }) {
      const r = await run('nsenter', [`--net=/run/netns/${netnsName}`, '--', cmd, ...args], o?.timeoutMs);
      if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    },
  } as unknown as ClusterHost;
  let gluster: Gluster;
  try {
    gluster = await startGluster(stand, opts);
  } catch (err) {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    await run('ip', ['netns', 'del', netnsName]);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    gluster,
    netns: netnsName,
    mount: async (mp) => void (await gluster.mount(here, mp)),
    unmount: (mp) => gluster.unmount(here, mp),
    async pids(names) {
      const all = (await run('ip', ['netns', 'pids', netnsName])).stdout.split('\n').map(Number).filter((p) => p > 1);
      const out: number[] = [];
      for (const p of all) {
        const comm = (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim();
        if (names.includes(comm)) out.push(p);
      }
      return out;
    },
    async stop() {
      for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
