/** Repository locks: shared for backup, restore and remove, exclusive for prune; refreshed, and trusted only while fresh. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { FerryError, errorMessage } from '../util/errors.js';
import type { Codec } from './crypto.js';
import { nameOf, type Target } from './target.js';

const LOCK_REFRESH_MS = 5 * 60_000;
const LOCK_STALE_MS = 30 * 60_000;
const LOCK_AAD = Buffer.from('ferry lock');

/** A held lock: call it to release; `check()` throws when it can no longer be trusted to be held. */
export type RepoLock = (() => Promise<void>) & { check(): void };

export interface LockFile {
  host: string;
  pid: number;
  time: string;
  exclusive: boolean;
  op: string;
}

/** Where locks live: the repository's target and codec. */
export interface LockPlace {
  readonly target: Target;
  readonly codec: Codec;
}

export interface LockTiming {
  refreshMs?: number;
  staleMs?: number;
}

/**
 * Take a lock. Writes locks/ID first, then looks at the others, and backs off when one conflicts;
 * stale locks (not refreshed for 30 minutes, or of a dead process on this host) are ignored. The lock is
 * rewritten every 5 minutes; `check()` throws once it has not been refreshed for so long that another
 * host may take it as stale (and a prune there may remove what this operation relies on): a backup checks
 * before it records itself.
 */
export async function takeLock(place: LockPlace, exclusive: boolean, op: string, timing: LockTiming = {}): Promise<RepoLock> {
  const { target, codec } = place;
  const refreshMs = timing.refreshMs ?? LOCK_REFRESH_MS;
  const staleMs = timing.staleMs ?? LOCK_STALE_MS;
  const id = randomBytes(16).toString('hex');
  const name = `locks/${id}`;
  const host = hostname();
  const write = async () => {
    const body = await codec.encodeJson({ host, pid: process.pid, time: new Date().toISOString(), exclusive, op } satisfies LockFile, LOCK_AAD);
    await target.put(name, body);
  };
  await write();
  try {
    for (const o of await target.list('locks')) {
      if (nameOf(o.name) === id) continue;
      const other = await readLock(place, nameOf(o.name));
      if (!other || isStale(other)) continue;
      if (exclusive || other.exclusive) {
        throw new FerryError('in_use', `${target.url} is locked${other.exclusive ? ' exclusively' : ''} by ${other.op} on ${other.host} (pid ${other.pid}) since ${other.time}; retry later`, { lock: other });
      }
    }
  } catch (err) {
    await target.remove(name).catch(() => undefined);
    throw err;
  }
  let refreshedAt = Date.now();
  let lastError: string | undefined;
  const timer = setInterval(
    () =>
      void write().then(
        () => ((refreshedAt = Date.now()), (lastError = undefined)),
        (err: unknown) => (lastError = errorMessage(err)),
      ),
    refreshMs,
  );
  timer.unref();
  const release = async () => {
    clearInterval(timer);
    await target.remove(name);
  };
  const check = () => {
    // one refresh interval of margin: the lock must still look fresh to others when the caller writes
    if (Date.now() - refreshedAt <= staleMs - refreshMs) return;
    throw new FerryError(
      'unavailable',
      `lost the lock on ${target.url}: it could not be refreshed since ${new Date(refreshedAt).toISOString()}${lastError ? ` (${lastError})` : ''}, so a prune elsewhere may have removed data this ${op} relies on; nothing was recorded: run it again`,
    );
  };
  return Object.assign(release, { check });
}

/**
 * A lock file, or undefined when it is gone or unreadable (a half-written lock does not block anyone).
 * A lock in a format this version does not know is not damage but a newer Ferry at work: it fails
 * closed (in_use), since ignoring it could let a prune here delete what a backup there is writing.
 */
export async function readLock(place: LockPlace, id: string): Promise<LockFile | undefined> {
  try {
    return await place.codec.decodeJson<LockFile>(await place.target.get(`locks/${id}`), LOCK_AAD, `lock ${id}`);
  } catch (err) {
    if (err instanceof FerryError && err.details?.format !== undefined) {
      throw new FerryError(
        'in_use',
        `${place.target.url} is locked by a newer version of Ferry (lock ${id} uses format ${String(err.details.format)}, which this version cannot read): upgrade Ferry on this host, or remove locks/${id} if no newer Ferry is using this repository`,
        { lock: id },
      );
    }
    if (err instanceof FerryError && (err.code === 'not_found' || err.code === 'corrupt')) return undefined;
    throw err;
  }
}

/** Remove the locks of operations that are gone; returns how many. */
export async function removeStaleLocks(place: LockPlace): Promise<number> {
  let n = 0;
  for (const o of await place.target.list('locks')) {
    // (a newer Ferry's lock cannot be judged stale here: it stays)
    const l = await readLock(place, nameOf(o.name)).catch((err: unknown) => {
      if (err instanceof FerryError && err.code === 'in_use') return undefined;
      throw err;
    });
    if (l && isStale(l)) {
      await place.target.remove(o.name);
      n++;
    }
  }
  return n;
}

function isStale(l: LockFile): boolean {
  if (Date.now() - Date.parse(l.time) > LOCK_STALE_MS) return true;
  if (l.host === hostname() && l.pid !== process.pid) {
    try {
      process.kill(l.pid, 0);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return false;
}
