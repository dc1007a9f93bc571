/** The HTTP servers' shared set-up (Fastify with ferryd's logger). */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { shown } from './shown.js';

/** Path parameters (volume names up to 128 characters, trash ids, snapshot refs) fit with room to spare. */
export const MAX_PARAM_LENGTH = 1024;

export interface HttpServerOptions {
  https?: { cert: Buffer; key: Buffer };
  /** Answer a URL Fastify cannot route (bad %-escape, over-long parameter) in this server's own error format. */
  badUrl?: (reply: FastifyReply, message: string) => unknown;
}

/** A Fastify instance logging through ferryd's logger, without a log line per request (calls are logged by us). */
export function newHttpServer(log: Logger, component: string, bodyLimit: number, opts: HttpServerOptions = {}): FastifyInstance {
  return Fastify({
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    maxParamLength: MAX_PARAM_LENGTH,
    ...(opts.https ? { https: opts.https } : {}),
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
