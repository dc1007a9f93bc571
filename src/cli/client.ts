import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const DEFAULT_API_SOCKET = '/run/ferry/api.sock';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** ferryd's API over TCP (ferryd --api-listen): base URL, bearer token, CA for a self-signed certificate. */
export interface RemoteApi {
  url: string;
  token: string;
  ca?: Buffer;
}

/** The CLI's only way to ferryd: JSON over the control API's unix socket (or its TCP listener, with a token). */
export class ApiClient {
  constructor(
    readonly socketPath: string,
    readonly remote?: RemoteApi,
  ) {}

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const remote = this.remote;
    const url = remote ? new URL(path, remote.url) : undefined;
    const headers: Record<string, string | number> = {
      ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      ...(remote ? { authorization: `Bearer ${remote.token}` } : {}),
    };
    const send = url?.protocol === 'https:' ? httpsRequest : request;
    return new Promise<T>((resolve, reject) => {
      const req = send(
        url
          ? { protocol: url.protocol, hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port, path: url.pathname + url.search, method, headers, ...(remote?.ca ? { ca: remote.ca } : {}) }
          : { socketPath: this.socketPath, path, method, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              return reject(new ApiError(res.statusCode ?? 0, 'bad_response', `ferryd answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(json as T);
            const e = (json as { error?: { code?: string; message?: string; details?: unknown } }).error;
            reject(new ApiError(status, e?.code ?? 'error', e?.message ?? `ferryd answered HTTP ${status}`, e?.details));
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (remote) {
          return reject(new ApiError(0, 'unreachable', `cannot reach ferryd at ${remote.url} (${err.code ?? err.message}${err.code && err.message && !err.message.includes(err.code) ? ': ' + err.message : ''}); is ferryd started with --api-listen there? Check --api-url or FERRY_API_URL (and FERRY_API_CA for a self-signed certificate)`));
        }
        const why = err.code === 'ENOENT' ? 'no socket there' : err.code === 'ECONNREFUSED' ? 'nothing listens on it' : err.code === 'EACCES' ? 'permission denied: run as root' : err.message;
        reject(
          new ApiError(
            0,
            'unreachable',
            `cannot reach ferryd at ${this.socketPath} (${why}); is it running? Start it with \`ferry daemon\`, or point --api-socket or FERRY_API_SOCKET at its socket`,
          ),
        );
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}
