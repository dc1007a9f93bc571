/** The control API over TCP: the listen address and the TLS certificate. */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { FerryError, errorMessage } from '../util/errors.js';

/** Split HOST:PORT (IPv6 hosts in brackets: [::1]:7677). The config schema has checked the form. */
export function parseListen(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(addr.slice(i + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) throw new FerryError('invalid', `apiListen ${addr}: write HOST:PORT, e.g. 127.0.0.1:7677`);
  return { host, port };
}

/** The certificate and key of apiTls, read at start so that a wrong path stops ferryd with a clear message. */
export async function readTls(paths: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (what: string, path: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new FerryError('invalid', `apiTls.${what}: cannot read ${path}: ${errorMessage(err)}`);
    }
  };
  return { cert: await read('cert', paths.cert), key: await read('key', paths.key) };
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** Listen on exactly the address asked for; returns the address bound (HOST:PORT, with the real port when 0 was asked). */
export async function listenTcp(app: FastifyInstance, addr: string, { tls, log }: { tls: boolean; log: Logger }): Promise<string> {
  const { host, port } = parseListen(addr);
  try {
    await app.listen({ host, port, listenTextResolver: () => '' });
  } catch (err) {
    throw new FerryError('unavailable', `cannot listen on ${addr} for the API (${errorMessage(err)}); pick another address with --api-listen or apiListen`);
  }
  const bound = app.server.address() as AddressInfo;
  const at = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  if (!tls && !isLoopback(host)) {
    log.warn({ apiListen: at }, 'the API listens on a non-loopback address without TLS: tokens and data cross the network in clear; set apiTls (cert and key)');
  }
  log.info({ apiListen: at, tls }, 'API listening on TCP (bearer tokens required)');
  return at;
}
