/** Checks `ferry doctor` can make from files alone, with or without a running ferryd: the data dir's lock, sockets, pool directories. */
import { connect } from 'node:net';
import { lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { lockState } from '../util/data-dir-lock.js';
import { POOL_MARKER } from '../pools/share-check.js';
import { mountOf, withTimeout } from '../util/mounts.js';
import { errorMessage, isErrno } from '../util/errors.js';
import { ok, problem, type DoctorCheck } from './check.js';

/** Who holds the data dir's lock, when ferryd does not answer. */
export function lockCheck(dataDir: string): DoctorCheck {
  const s = lockState(dataDir);
  if (!s.exists) return ok('lock', `no ferryd has used ${dataDir} yet (no ${s.path})`);
  if (!s.held) return ok('lock', `nothing holds the lock of ${dataDir}: no ferryd runs on it`);
  if (s.holderVerified) {
    const h = s.holder!;
    return problem('lock', `ferryd pid ${h.pid} holds the lock of ${dataDir} but does not answer here`, `its API socket is ${h.apiSocket}: point --api-socket there; if it hangs, restart it (kill ${h.pid})`);
  }
  return problem('lock', `a process other than ferryd holds the lock ${s.path}`, `find it with \`grep FLOCK /proc/locks\` or \`fuser ${s.path}\` and stop it: ferryd cannot start while it holds the lock`);
}

/** Does something answer on the unix socket at `path`? */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => (s.destroy(), resolve(false)), 3000);
    s.once('connect', () => (clearTimeout(timer), s.destroy(), resolve(true)));
    s.once('error', () => (clearTimeout(timer), resolve(false)));
  });
}

/** A socket of a ferryd that is not running: absent is fine, a dead one left behind is a problem. */
export async function deadSocketCheck(check: string, path: string, what: string, consequence: string): Promise<DoctorCheck> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) return problem(check, `${what} ${path} exists and is not a socket`, 'move it away: ferryd cannot listen there');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return ok(check, `no ${what} at ${path} (ferryd removes it when it stops)`);
    return problem(check, `${what} ${path}: ${errorMessage(err)}`);
  }
  if (await socketAnswers(path)) return problem(check, `something answers on ${what} ${path} although ferryd does not`, 'another program serves it; stop it or give ferryd another path');
  return problem(check, `${what} ${path} is left from a ferryd that is gone: ${consequence}`, `start ferryd (it replaces the socket) or remove the file`);
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await withTimeout(stat(path), 5000, `${path} did not answer in 5 s`)).isDirectory();
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false;
    throw err;
  }
}

/** A pool's directories exist; a shared pool's root is on a mounted filesystem and carries its marker. */
export async function poolCheck(pool: { name: string; path: string; shared: boolean }): Promise<DoctorCheck> {
  const id = `pool:${pool.name}`;
  try {
    if (!(await isDir(pool.path))) {
      const on = pool.shared ? await withTimeout(mountOf(pool.path), 5000, `mount table did not answer`).catch(() => undefined) : undefined;
      if (on && on.mountPoint !== '/') {
        return problem(id, `shared pool ${pool.name}: its directory ${pool.path} does not exist on the ${on.fsType} share mounted at ${on.mountPoint}`, `create it there (mkdir -p ${pool.path}, on one host: every host sees it), or fix the path of pool ${pool.name} in the config`);
      }
      return problem(id, `pool ${pool.name}: its directory ${pool.path} does not exist`, `mount the pool's filesystem there, or fix the path of pool ${pool.name} in the config`);
    }
    if (pool.shared) {
      const m = await withTimeout(mountOf(pool.path), 5000, `mount table did not answer`);
      const marked = await withTimeout(stat(join(pool.path, POOL_MARKER)), 5000, `${pool.path} did not answer in 5 s (a hung network filesystem?)`).then(() => true, (err) => {
        if (isErrno(err, 'ENOENT')) return false;
        throw err;
      });
      if (!marked) return problem(id, `shared pool ${pool.name}: no ${POOL_MARKER} marker in ${pool.path}: the share is not mounted there`, `mount the share at ${pool.path} (ferryd writes the marker on first use)`);
      if (m.mountPoint === '/') return problem(id, `shared pool ${pool.name}: ${pool.path} has its marker but is on the root filesystem, not on a mounted share`, `mount the share at ${pool.path}; ignore this only if every host really sees this directory`);
      for (const sub of ['volumes', 'trash']) if (!(await isDir(join(pool.path, sub)))) return problem(id, `shared pool ${pool.name}: ${join(pool.path, sub)} is missing`, 'restart ferryd to create it, or check the share');
      return ok(id, `shared pool ${pool.name}: ${m.fsType} mounted at ${m.mountPoint}, marker present`);
    }
    for (const sub of ['volumes', 'trash']) {
      if (!(await isDir(join(pool.path, sub)))) return problem(id, `pool ${pool.name}: ${join(pool.path, sub)} is missing`, `if the pool's disk is not mounted, mount it; else restart ferryd, which creates it`);
    }
    return ok(id, `pool ${pool.name}: ${pool.path} is there`);
  } catch (err) {
    // a FUSE mount whose connection was aborted (by \`ferry fence\`, or its server gone) stays dead until mounted again
    if (isErrno(err, 'ENOTCONN') || /ENOTCONN/.test(errorMessage(err))) {
      return problem(id, `pool ${pool.name}: ${errorMessage(err)}: the share's mount at ${pool.path} is dead (its connection was aborted: by \`ferry fence\`, which logs it, or by the share's client or server)`, `mount it again: umount -l MOUNTPOINT, then mount it as before (a pool with a mount: setting is mounted again by ferryd itself)`);
    }
    return problem(id, `pool ${pool.name}: ${errorMessage(err)}`, 'check the filesystem of the pool');
  }
}
