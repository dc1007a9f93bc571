/** The HTTP servers' shared set-up (Fastify with ferryd's logger). */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { shown } from './shown.js';

/** Path parameters (volume names up to 128 characters, trash ids, snapshot refs) fit with room to spare. */
export const MAX_PARAM_LENGTH = 1024;

export interface HttpServerOptions {
  https?: { cert: Buffer; key: Buffer };
  /** Answer a URL Fastify cannot route (bad %-escape, over-long parameter) in this server's own error format. */
  badUrl?: (reply: FastifyReply, message: string) => unknown;
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
