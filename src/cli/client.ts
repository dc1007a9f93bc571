// The CLI's transport to ferryd (unix socket, or TCP/https with a token) under the shared typed client (src/wire/client.ts).
import { request } from 'node:http';
import { ApiError, FerryClient, type Transport } from '../wire/client.js';

export { ApiError };

export const DEFAULT_API_SOCKET = '/run/ferry/api.sock';

/** ferryd's API over TCP (ferryd --api-listen): base URL, bearer token, CA for a self-signed certificate. */
export interface RemoteApi {
  url: string;
  token: string;
  ca?: Buffer;
}

/**
 * Node's fetch cannot talk over a unix socket nor take a CA per request, so the CLI keeps node:http(s)
 * as its transport; what is sent and how answers are read is the shared client's.
 */
function nodeTransport(socketPath: string, remote?: RemoteApi): Transport {
  return async ({ method, path, headers: h, body }) => {
    const url = remote ? new URL(path, remote.url) : undefined;
    const headers: Record<string, string | number> = {
      ...h,
      ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}),
      ...(remote ? { authorization: `Bearer ${remote.token}` } : {}),
    };
    // node:https (TLS) loads only for an https --api-url: every other command starts without it
    const send = url?.protocol === 'https:' ? (await import('node:https')).request : request;
    return new Promise((resolve, reject) => {
      const req = send(
        url
          ? { protocol: url.protocol, hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port, path: url.pathname + url.search, method, headers, ...(remote?.ca ? { ca: remote.ca } : {}) }
          : // servername '': no TLS here, and without it Node's agent tests the host for an IP address, compiling
            // its IPv6 pattern: 13 ms of every command's CPU (a profile of `ferry volume ls`)
            { socketPath, path, method, headers, servername: '' },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (remote) {
          return reject(new ApiError(0, 'unreachable', `cannot reach ferryd at ${remote.url} (${err.code ?? err.message}${err.code && err.message && !err.message.includes(err.code) ? ': ' + err.message : ''}); is ferryd started with --api-listen there? Check --api-url or FERRY_API_URL (and FERRY_API_CA for a self-signed certificate)`));
        }
        const why = err.code === 'ENOENT' ? 'no socket there' : err.code === 'ECONNREFUSED' ? 'nothing listens on it' : err.code === 'EACCES' ? 'permission denied: run as root' : err.message;
        reject(new ApiError(0, 'unreachable', `cannot reach ferryd at ${socketPath} (${why}); is it running? Start it with \`ferry daemon\`, or point --api-socket or FERRY_API_SOCKET at its socket`));
      });
      if (body !== undefined) req.write(body);
      req.end();
    });
  };
}

/** The CLI's only way to ferryd: the shared typed client over the control API's unix socket (or its TCP listener, with a token). */
export class ApiClient extends FerryClient {
  constructor(
    readonly socketPath: string,
    readonly remote?: RemoteApi,
  ) {
    super(nodeTransport(socketPath, remote));
  }
}
