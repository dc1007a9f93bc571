/** Which caches of a GlusterFS client answer for other nodes' changes: read from the mount's own `.meta` directory (see docs/shared-pools.md, GlusterFS). */
import { readdir, readFile } from 'node:fs/promises';
import { mountOf } from '../util/mounts.js';
import { errorMessage } from '../util/errors.js';

/** The client translators that answer from their own cache, and the volume option that takes each out of the client. */
const CACHING = [
  ['md-cache', 'performance.stat-prefetch'],
  ['quick-read', 'performance.quick-read'],
  ['open-behind', 'performance.open-behind'],
] as const;

export type GlusterCaches =
  | { kind: 'not-gluster' }
  /** `on`: the volume options still on that keep a cache in the client; empty: none. */
  | { kind: 'gluster'; mountPoint: string; volume: string; on: string[] }
  | { kind: 'unknown'; mountPoint: string; why: string };

/**
 * Look at the GlusterFS client that holds `root`: its active graph (`.meta/graphs/active/VOLUME-md-cache` and the
 * like are there only while the volume option turning them off is not set), and its command line
 * (`.meta/cmdline`) for the volume's name. Both are answered by the client itself, not its server.
 */
export async function glusterCaches(root: string): Promise<GlusterCaches> {
  const m = await mountOf(root);
  if (m.fsType !== 'fuse.glusterfs') return { kind: 'not-gluster' };
  const meta = `${m.mountPoint === '/' ? '' : m.mountPoint}/.meta`;
  let cmdline: string;
  let active: string[];
  try {
    cmdline = String((JSON.parse(await readFile(`${meta}/cmdline`, 'utf8')) as { Cmdlinestr?: unknown }).Cmdlinestr ?? '');
    active = await readdir(`${meta}/graphs/active`);
  } catch (err) {
    return { kind: 'unknown', mountPoint: m.mountPoint, why: `its ${meta} cannot be read (${errorMessage(err)})` };
  }
  const volume = /--volfile-id=\/?(\S+)/.exec(cmdline)?.[1] ?? m.source.replace(/^.*:\/?/, '');
  const on = CACHING.filter(([xlator]) => active.some((x) => x.endsWith(`-${xlator}`))).map(([, option]) => option);
  return { kind: 'gluster', mountPoint: m.mountPoint, volume, on };
}

/** What to tell the operator of pool `pool` about the caching volume options found `on` (docs/shared-pools.md). */
export function cacheAdvice(pool: string, c: { mountPoint: string; volume: string; on: string[] }): { message: string; fix: string } {
  const message = `shared pool ${pool}: its GlusterFS client (${c.mountPoint}) answers from its own caches for about a second after another node's change (${c.on.map((o) => `${o} on`).join(', ')}): a node may then read an old catalog record, or mount a volume removed and created again on another node a moment before (docs/shared-pools.md, GlusterFS)`;
  return { message, fix: `${c.on.map((o) => `gluster volume set ${c.volume} ${o} off`).join('; ')} (docs/shared-pools.md, "GlusterFS: settings for several nodes")` };
}
