import { request } from 'node:http';

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

/** The CLI's only way to ferryd: JSON over the control API's unix socket. */
export class ApiClient {
  constructor(readonly socketPath: string) {}

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        },
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
