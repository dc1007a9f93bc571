/** Listening on unix sockets safely: stale sockets removed, a live one never stolen. */
import { connect } from 'node:net';
import { chmod, unlink, lstat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { FerryError, isErrno } from './errors.js';
import { makeDirs } from './make-dirs.js';

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
 * Refuse a path another process serves, or that is not a socket; true when a stale socket is there to
 * be replaced. ferryd asks this of its sockets before it makes anything (its data dir), and again here.
 */
export async function checkSocketPath(path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new FerryError('invalid', `${path} exists and is not a socket; move it away or pick another path`);
    if (await socketAlive(path)) {
      throw new FerryError('exists', `another process is already serving ${path}; stop it first (is ferryd already running?)`);
    }
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/**
 * Listen on a unix socket: create its directory, remove a stale socket left by a crash, refuse to steal
 * the socket of a daemon that is still running, and set the socket's mode.
 */
export async function listenUnix(app: FastifyInstance, path: string, mode: number): Promise<void> {
  await makeDirs(dirname(path));
  if (await checkSocketPath(path)) await unlink(path).catch((err: unknown) => (isErrno(err, 'ENOENT') ? undefined : Promise.reject(err)));
  // A deep accept queue: Docker opens many connections at once (at its start-up it Gets every volume in
  // parallel), and a full queue on a unix socket fails the connect with EAGAIN instead of waiting.
  await app.listen({ path, backlog: 4096 });
  await chmod(path, mode);
}

/**
 * Serve on a listening socket inherited from systemd (socket activation). Connections that arrived while
 * ferryd was starting wait in that socket's queue and are answered now. The socket stays systemd's:
 * ferryd never unlinks it, and `closeInherited` only closes ferryd's copy.
 */
export async function listenFd(app: FastifyInstance, fd: number): Promise<void> {
  // Fastify's own listen() cannot log the address of an inherited unix socket: listen on its server.
  await app.ready();
  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen({ fd, backlog: 4096 }, () => {
      app.server.off('error', reject);
      resolve();
    });
  });
}

/** Stop serving an inherited socket: in-flight requests finish, new connections queue for the next ferryd. */
export async function closeInherited(app: FastifyInstance): Promise<void> {
  await app.close();
  if (app.server.listening) await new Promise<void>((resolve) => app.server.close(() => resolve()));
}
