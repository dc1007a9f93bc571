/** The HTTP servers' shared set-up (Fastify with ferryd's logger). */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { createServer, maxHeaderSize, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { shown } from './shown.js';

/** Path parameters (volume names up to 128 characters, trash ids, snapshot refs) fit with room to spare. */
export const MAX_PARAM_LENGTH = 1024;

export interface HttpServerOptions {
  https?: { cert: Buffer; key: Buffer };
  /** Answer a URL Fastify cannot route (bad %-escape, over-long parameter) in this server's own error format. */
  badUrl?: (reply: FastifyReply, message: string) => unknown;
  /** The body of an answer to a request Node's HTTP parser refused (clientError), in this server's error format; default the API's. */
  errorBody?: (message: string) => unknown;
  /**
   * Offered every request before Fastify sees it: true when it took the request (and will answer it).
   * The plugin socket answers Docker's well-formed calls here, without Fastify's per-request work.
   */
  before?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A Fastify instance logging through ferryd's logger, without a log line per request (calls are logged by us). */
export function newHttpServer(log: Logger, component: string, bodyLimit: number, opts: HttpServerOptions = {}): FastifyInstance {
  return Fastify({
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ...(opts.https ? { https: opts.https } : {}),
    ...(opts.before
      ? {
          // (the server Fastify would make, with its timeouts, in front of which `before` sits)
          serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void, fastifyOptions: Record<string, unknown>) => {
            const o = fastifyOptions as { keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number; maxRequestsPerSocket: number };
            const server = createServer((req, res) => {
              if (!opts.before!(req, res)) handler(req, res);
            });
            server.keepAliveTimeout = o.keepAliveTimeout;
            server.requestTimeout = o.requestTimeout;
            server.setTimeout(o.connectionTimeout);
            if (o.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket;
            return server;
          },
        }
      : {}),
    clientErrorHandler: (err: Error & { code?: string }, socket: Duplex) => clientError(err, socket, opts.errorBody, log),
    frameworkErrors: (err, req, reply) => {
      const url = req.url;
      const message =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? `a path parameter of ${shown(url)} is longer than ${MAX_PARAM_LENGTH} characters`
          : `the URL ${shown(url)} is not valid: a "%" must start an escape of UTF-8 such as %2F`;
      const r = reply as unknown as FastifyReply;
      if (opts.badUrl) return opts.badUrl(r, message);
      return r.code(400).send({ error: { code: 'invalid', message } });
    },
  }) as unknown as FastifyInstance;
}

/**
 * A request Node's HTTP parser refused before Fastify saw it (too long a URL or headers, not HTTP): answered in
 * the server's own error format, naming what was wrong (Fastify's default body has neither), then closed.
 */
function clientError(err: Error & { code?: string }, socket: Duplex, errorBody: ((message: string) => unknown) | undefined, log: Logger): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return; // (the client went: nothing to answer)
  const [status, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, `the request's URL and headers are longer than ${maxHeaderSize} bytes in all: a path parameter, query string or header is too long`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request did not arrive in time: send it again']
        : [400, `the request is not valid HTTP/1.1 (${err.code ?? err.message})`];
  log.debug({ err: err.message, code: err.code }, 'refused a request the HTTP parser could not read');
  const body = JSON.stringify(errorBody ? errorBody(message) : { error: { code: 'invalid', message } });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}
