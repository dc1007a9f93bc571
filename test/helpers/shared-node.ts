// A test host of a shared pool: a private Docker engine and a ferryd whose default pool is a directory every host sees.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDockerHost, type DockerHost } from './dockerhost.js';
import { run, startFerryd, type Ferryd } from './ferryd.js';

export interface SharedNode {
  h: DockerHost;
  f: Ferryd;
}

export interface SharedNodeOptions {
  /** Where the node's ferryd dir goes (BASE/nodeNAME). */
  base: string;
  /** The shared directory (marked with .ferry-pool by makeSharedDir). */
  pool: string;
  /** Node name nodeNAME, engine label PREFIXNAME. */
  name: string;
  label: string;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  fenceMs?: number;
}

/** The directory playing a share every host has mounted (what an NFS mount is on real hosts). */
export async function makeSharedDir(pool: string): Promise<string> {
  await mkdir(pool, { recursive: true });
  await writeFile(join(pool, '.ferry-pool'), 'a directory the test hosts share\n');
  return pool;
}

/**
 * A share as a mount point: BASE/nas-export bind-mounted on BASE/mnt-nas and marked (a mount of its own, so
 * that a test can unmount it under ferryd as a share that goes away). Resolves to the mount point; unmount
 * it with `umount` when done.
 */
export async function mountBindShare(base: string): Promise<string> {
  const share = join(base, 'nas-export');
  const mnt = join(base, 'mnt-nas');
  await mkdir(share);
  await mkdir(mnt);
  const r = await run('mount', ['--bind', share, mnt]);
  if (r.code !== 0) throw new Error(`mount --bind ${share} ${mnt}: ${r.stderr}`);
  await writeFile(join(mnt, '.ferry-pool'), 'test share\n');
  return mnt;
}

/** The ferry.yaml of a node whose default pool `nas` is the shared directory. */
export function sharedConfig(node: string, pool: string, o: { heartbeatMs: number; nodeTimeoutMs: number; fenceMs?: number }): string {
  return [
    `node: ${node}`,
    `heartbeatInterval: ${o.heartbeatMs}ms`,
    `nodeTimeout: ${o.nodeTimeoutMs}ms`,
    ...(o.fenceMs ? [`fenceDeadline: ${o.fenceMs}ms`] : []),
    'defaultPool: nas',
    'pools:',
    '  nas:',
    `    path: ${pool}`,
    '    shared: true',
  ].join('\n');
}

/** Starts the engine and its ferryd (plugin socket in the engine's plugin dir, the engine as its Docker host). */
export async function startSharedNode(o: SharedNodeOptions): Promise<SharedNode> {
  const h = await startDockerHost({ name: `${o.label}${o.name}` });
  const node = `node${o.name}`;
  const dir = join(o.base, node);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ferry.yaml'), sharedConfig(node, o.pool, o));
  const f = await startFerryd({ dir, pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node] });
  return { h, f };
}

/** Stops every engine and ferryd (errors of one do not keep the others running). */
export async function stopSharedNodes(nodes: Array<SharedNode | undefined>): Promise<void> {
  for (const n of nodes) {
    await n?.h.stop().catch(() => undefined);
    await n?.f.destroy().catch(() => undefined);
  }
}

/**
 * A ferryd without Docker on a share every test node sees (mountBindShare): node NAME with its directory in
 * BASE/NAME, pool `nas` the share, fast heartbeats (200 ms; dead after 1.5 s unless told otherwise).
 */
export async function startShareFerryd(
  base: string,
  share: string,
  node: string,
  o: { env?: Record<string, string>; logLevel?: 'info' | 'debug'; heartbeatMs?: number; nodeTimeoutMs?: number } = {},
): Promise<Ferryd> {
  const dir = join(base, node);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ferry.yaml'), sharedConfig(node, share, { heartbeatMs: o.heartbeatMs ?? 200, nodeTimeoutMs: o.nodeTimeoutMs ?? 1500 }));
  return startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node], ...(o.env ? { env: o.env } : {}), ...(o.logLevel ? { logLevel: o.logLevel } : {}) });
}

/** Send a plugin call and insist that it succeeds (Err empty); returns the answer's JSON. */
export async function pluginOk(f: Ferryd, method: string, body: Record<string, unknown>): Promise<Record<string, string> & { Mountpoint: string }> {
  const r = await f.plugin(method, body);
  if (r.json?.Err !== '') throw new Error(`${method} ${JSON.stringify(body)} on ${f.dir}: ${r.text}`);
  return r.json as Record<string, string> & { Mountpoint: string };
}
