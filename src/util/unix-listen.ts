import { connect } from 'node:net';
import { chmod, mkdir, unlink, lstat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { FerryError, isErrno } from './errors.js';

/** True when something answers on the unix socket at `path`. */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listen on a unix socket: create its directory, remove a stale socket left by a crash, refuse to steal
 * the socket of a daemon that is still running, and set the socket's mode.
 */
export async function listenUnix(app: FastifyInstance, path: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new FerryError('invalid', `${path} exists and is not a socket; move it away or pick another path`);
    if (await socketAlive(path)) {
      throw new FerryError('exists', `another process is already serving ${path}; stop it first (is ferryd already running?)`);
    }
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  // A deep accept queue: Docker opens many connections at once (at its start-up it Gets every volume in
  // parallel), and a full queue on a unix socket fails the connect with EAGAIN instead of waiting.
  await app.listen({ path, backlog: 4096 });
  await chmod(path, mode);
}
