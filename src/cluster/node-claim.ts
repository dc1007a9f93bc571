/** One node name, one ferryd: decide whether a heartbeat found in a shared pool belongs to another live ferryd. */
import { readFileSync, readlinkSync } from 'node:fs';
import { FerryError } from '../util/errors.js';
import type { NodeBeat } from './shared-store.js';

/** Who this ferryd is, as written into its heartbeats. */
export interface Claimant {
  node: string;
  instance: string;
  dataDir?: string;
  /** Boot id and mount namespace: with the data dir, names one data dir on one running kernel. */
  machine?: string;
}

/** This kernel's boot id and this process's mount namespace (undefined outside Linux /proc). */
export function machineId(): string | undefined {
  try {
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${readlinkSync('/proc/self/ns/mnt')}`;
  } catch {
    return undefined;
  }
}

export type ClaimVerdict =
  /** No heartbeat, this process's own, a clean stop, or one long dead: the name is free. */
  | { free: true; why: string }
  /** Another instance beat recently: watch whether it still does before taking the name. */
  | { free: false };

/**
 * What a heartbeat of this node's name, found at start, means. `heldDataDirLock`: this process holds the
 * lock of `me.dataDir`, so a beat written from that same data dir on this same kernel is from a ferryd
 * that has died (a live one would hold the lock) and needs no watching.
 */
export function judgeClaim(theirs: NodeBeat | undefined, me: Claimant, now: number, nodeTimeoutMs: number, heldDataDirLock: boolean): ClaimVerdict {
  if (!theirs) return { free: true, why: 'no heartbeat of this node yet' };
  if (theirs.instance === me.instance) return { free: true, why: 'our own heartbeat' };
  if (theirs.stoppedAt) return { free: true, why: `the previous ferryd of this node stopped cleanly at ${theirs.stoppedAt}` };
  if (heldDataDirLock && me.machine && theirs.machine === me.machine && theirs.dataDir === me.dataDir) {
    return { free: true, why: 'the previous ferryd of this data dir died (this one holds its lock)' };
  }
  const age = now - Date.parse(theirs.lastSeen);
  if (!(age <= nodeTimeoutMs)) return { free: true, why: `the last heartbeat (${theirs.lastSeen}) is older than nodeTimeout` };
  return { free: false };
}

/** How long to watch a fresh heartbeat of another instance: one interval, plus a margin for a late beat. */
export function watchMs(heartbeatMs: number): number {
  return heartbeatMs + Math.max(1000, heartbeatMs / 2);
}

/** The refusal: names the other ferryd as well as its heartbeat tells. */
export function claimConflict(pool: string, b: NodeBeat): FerryError {
  const who = [`pid ${b.pid}`, ...(b.host ? [`on host ${b.host}`] : []), ...(b.dataDir ? [`data dir ${b.dataDir}`] : [])].join(', ');
  return new FerryError(
    'in_use',
    `another ferryd (${who}) is node ${b.node} in shared pool ${pool}, alive since ${b.startedAt} (last heartbeat ${b.lastSeen}); ` +
      `give this ferryd another node name (--node or node: in the config), or stop that one`,
    { claim: true, pool, holder: b },
  );
}

export function isClaimConflict(err: unknown): err is FerryError {
  return err instanceof FerryError && err.details?.claim === true;
}

/**
 * Watch another instance's heartbeat for `watchMs(heartbeatMs)`: refused (throws) as soon as it is
 * renewed; free when it stops cleanly or is not renewed in time (that ferryd died).
 */
export async function watchClaim(read: () => Promise<NodeBeat | undefined>, first: NodeBeat, pool: string, heartbeatMs: number, sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))): Promise<string> {
  const steps = Math.max(4, Math.ceil(watchMs(heartbeatMs) / 250));
  for (let i = 0; i < steps; i++) {
    await sleep(watchMs(heartbeatMs) / steps);
    const now = await read();
    if (!now) return 'the heartbeat was removed meanwhile';
    if (now.stoppedAt) return `that ferryd stopped cleanly at ${now.stoppedAt}`;
    // renewed, or written by yet another ferryd that starts with this name: either is alive
    if (now.lastSeen !== first.lastSeen || now.instance !== first.instance) throw claimConflict(pool, now);
  }
  return `its heartbeat of ${first.lastSeen} was not renewed in ${Math.round(watchMs(heartbeatMs))} ms (that ferryd died)`;
}
