/** Probes of a shared pool's filesystem: is link(2) atomic there, and do the clocks of its nodes agree? */
import { link, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { errorMessage, isErrno } from '../util/errors.js';
import { ok, problem, type DoctorCheck } from './check.js';
import type { NodeBeat } from '../cluster/shared-store.js';

/** Clocks of a shared pool's nodes may differ by this much. */
export const MAX_CLOCK_SPREAD_MS = 1000;

async function inProbeDir<T>(root: string, node: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = join(root, `.ferry-doctor-${node}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Two files linked to one name at the same moment: exactly one link must succeed, the other fail with
 * EEXIST, and the name must be the winner's inode with two links. The shared catalog and rwo locks rely on it.
 */
export async function linkProbe(pool: string, root: string, node: string): Promise<DoctorCheck> {
  const id = `link:${pool}`;
  const fix = 'ferryd needs a filesystem where link(2) is atomic (NFSv3/v4, GlusterFS, CephFS do): check the share and its mount options';
  try {
    return await inProbeDir(root, node, async (dir) => {
      const [a, b, target] = ['a', 'b', 'target'].map((f) => join(dir, f)) as [string, string, string];
      await writeFile(a, 'a');
      await writeFile(b, 'b');
      const results = await Promise.allSettled([link(a, target), link(b, target)]);
      const won = results.filter((r) => r.status === 'fulfilled').length;
      const lost = results.filter((r) => r.status === 'rejected' && isErrno(r.reason, 'EEXIST')).length;
      if (won !== 1 || lost !== 1) {
        const other = results.find((r) => r.status === 'rejected' && !isErrno(r.reason, 'EEXIST'));
        return problem(id, `shared pool ${pool}: of two link(2) calls to one name ${won} succeeded${other ? ` (${errorMessage((other as PromiseRejectedResult).reason)})` : ''}, exactly one should`, fix);
      }
      const [st, sa, sb] = await Promise.all([stat(target), stat(a), stat(b)]);
      const winner = results[0]!.status === 'fulfilled' ? sa : sb;
      if (st.nlink !== 2 || st.ino !== winner.ino) return problem(id, `shared pool ${pool}: after link(2) the name has ${st.nlink} link(s)${st.ino !== winner.ino ? ' and is not the linked file' : ''}, it should have 2`, fix);
      return ok(id, `shared pool ${pool}: link(2) is atomic (of two racing links exactly one won)`);
    });
  } catch (err) {
    return problem(id, `shared pool ${pool}: the link(2) probe failed: ${errorMessage(err)}`, 'check that the share is mounted read-write');
  }
}

export interface ClockReading {
  node: string;
  /** The node's clock minus the share's server clock (ms). */
  offsetMs: number;
}

/** Readings farther apart than MAX_CLOCK_SPREAD_MS make a problem. Pure: unit-tested. */
export function judgeClocks(pool: string, readings: ClockReading[]): DoctorCheck {
  const id = `clocks:${pool}`;
  const sec = (ms: number) => `${ms >= 0 ? '+' : ''}${(ms / 1000).toFixed(2)} s`;
  const list = readings.map((r) => `${r.node} ${sec(r.offsetMs)}`).join(', ');
  if (readings.length === 0) return ok(id, `shared pool ${pool}: no clock to compare`);
  const offsets = readings.map((r) => r.offsetMs);
  const spread = Math.max(...offsets) - Math.min(...offsets);
  if (spread > MAX_CLOCK_SPREAD_MS) {
    return problem(id, `shared pool ${pool}: node clocks differ by ${(spread / 1000).toFixed(1)} s (against the share's server: ${list})`, 'run NTP (chrony, systemd-timesyncd) on every host: heartbeats are judged by the clock of the reader');
  }
  return ok(id, `shared pool ${pool}: node clocks within ${Math.max(1, Math.round(spread))} ms of each other (${list})`);
}

/**
 * How far each node's clock is from the share's server: a heartbeat's time (the writer's clock) against
 * its file's mtime (the server sets it); this host's own clock against a probe file it writes now.
 */
export async function clockReadings(root: string, node: string, beats: Array<{ beat: NodeBeat; file: string }>): Promise<ClockReading[]> {
  const out: ClockReading[] = [];
  const here = await inProbeDir(root, node, async (dir) => {
    const f = join(dir, 'clock');
    const t0 = Date.now();
    await writeFile(f, String(t0));
    const t1 = Date.now();
    return (t0 + t1) / 2 - (await stat(f)).mtimeMs;
  });
  out.push({ node: `${node} (this host)`, offsetMs: here });
  for (const { beat, file } of beats) {
    if (beat.node === node) continue;
    try {
      out.push({ node: beat.node, offsetMs: Date.parse(beat.lastSeen) - (await stat(file)).mtimeMs });
    } catch {
      /* the node's heartbeat went meanwhile */
    }
  }
  return out;
}
