import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

/** A Fastify instance logging through ferryd's logger, without a log line per request (calls are logged by us). */
export function newHttpServer(log: Logger, component: string, bodyLimit: number, opts: { https?: { cert: Buffer; key: Buffer } } = {}): FastifyInstance {
  return Fastify({
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    ...(opts.https ? { https: opts.https } : {}),
  }) as unknown as FastifyInstance;
}
