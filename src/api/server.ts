/** The control API's server (REST over the unix socket, and TCP with tokens): authentication, errors, compression; the routes are in routes/. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { gzipSync } from 'node:zlib';
import { newHttpServer } from '../util/http.js';
import type { Logger } from 'pino';
import type { VolumeService } from '../volumes/service.js';
import type { SnapshotService } from '../snapshots/service.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { shown } from '../util/shown.js';
import type { Cluster } from '../cluster/cluster.js';
import type { JobRegistry } from '../jobs/jobs.js';
import type { BackupService } from '../backup/service.js';
import type { TokenStore, TokenInfo } from './tokens.js';
import { serveUi } from './ui.js';
import type { DaemonFacts, HubOptions } from './options.js';
import type * as W from '../wire/types.js';
import { hubRoutes } from './routes/hub.js';
import { volumeRoutes } from './routes/volumes.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { backupRoutes } from './routes/backups.js';
import { trashRoutes } from './routes/trash.js';

export type { DaemonFacts, HubOptions };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served on the unix socket only (root on the host), refused over TCP whatever the token. */
    localOnly?: boolean;
    /** The web UI's static files: served over TCP without a token (they hold no data). */
    publicUi?: boolean;
  }
  interface FastifyRequest {
    /** The token the request came with, over TCP. */
    token?: TokenInfo;
  }
}

const routeLists = new WeakMap<FastifyInstance, Array<{ method: string; url: string }>>();

/** Every route of an app built by buildApiServer, as registered (HEAD routes Fastify adds for GETs left out). */
export function apiRoutes(app: FastifyInstance): Array<{ method: string; url: string }> {
  return [...(routeLists.get(app) ?? [])];
}

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Over TCP, JSON answers above 16 KiB are gzipped for clients that accept it (browsers do; the CLI does not
 * ask): the volumes list of 1,000 volumes is ~280 KiB of JSON and ~10x smaller gzipped, for ~2 ms of CPU.
 */
async function gzipLargeJson(req: FastifyRequest, reply: FastifyReply, payload: unknown) {
  if (!(typeof payload === 'string' || Buffer.isBuffer(payload)) || payload.length < 16 * 1024 || reply.getHeader('content-encoding')) return payload;
  if (!String(reply.getHeader('content-type') ?? '').startsWith('application/json')) return payload;
  if (!/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return payload;
  reply.header('content-encoding', 'gzip').header('vary', 'accept-encoding');
  if (typeof payload === 'string') return gzipSync(payload, { level: 4 });
  // a Buffer is an answer kept while it holds (the volume list): zipped once
  let zipped = gzippedAnswers.get(payload);
  if (!zipped) gzippedAnswers.set(payload, (zipped = gzipSync(payload, { level: 4 })));
  return zipped;
}
const gzippedAnswers = new WeakMap<Buffer, Buffer>();

function unauthorized(reply: FastifyReply, message: string) {
  return reply
    .code(401)
    .header('www-authenticate', 'Bearer realm="ferry"')
    .send({ error: { code: 'unauthorized', message } } satisfies W.ApiErrorBody);
}

/** The onRequest hook of the TCP listener: authentication and the role's rights, before anything else runs. */
function bearerAuth(tokens: TokenStore) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.routeOptions.config?.publicUi && READ_METHODS.has(req.method)) return undefined;
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      return unauthorized(reply, 'this API needs a token over TCP: send "Authorization: Bearer TOKEN" (create one on the ferryd host with `ferry token create --role read|admin`)');
    }
    const m = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header);
    if (!m) return unauthorized(reply, 'the Authorization header must be "Bearer TOKEN"');
    const token = tokens.verify(m[1]!);
    if (!token) return unauthorized(reply, 'the bearer token is not valid (unknown, mistyped or removed); `ferry token ls` on the ferryd host lists the tokens');
    req.token = token;
    if (req.routeOptions.config?.localOnly) {
      return reply.code(403).send({ error: { code: 'forbidden', message: 'tokens are managed on the ferryd host only: use `ferry token` there (as root, over the unix socket)' } });
    }
    if (token.role === 'read' && !READ_METHODS.has(req.method)) {
      return reply.code(403).send({ error: { code: 'forbidden', message: `token ${token.name} has the read role and cannot change anything: ${req.method} needs an admin token` } });
    }
    return undefined;
  };
}

/**
 * The control API (REST, JSON, versioned under /v1) that the CLI and, later, the web UI and remote clients
 * use. It only translates HTTP to service calls. Errors: `{"error": {"code", "message", "details"?}}`.
 */
export function buildApiServer(
  service: VolumeService,
  snapshots: SnapshotService,
  facts: DaemonFacts,
  log: Logger,
  cluster?: Cluster,
  extra?: { jobs: JobRegistry; backups: BackupService },
  hub: HubOptions = {},
): FastifyInstance {
  const remote = hub.remote;
  const app = newHttpServer(log, remote ? 'api-tcp' : 'api', 1024 * 1024, remote?.https ? { https: remote.https } : {});
  const routes: Array<{ method: string; url: string }> = [];
  routeLists.set(app, routes);
  app.addHook('onRoute', (r) => {
    if (r.config?.publicUi) return; // the web UI's files, not API routes
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
  if (remote) app.addHook('onRequest', bearerAuth(remote.tokens));
  if (remote?.ui && !serveUi(app, remote.ui)) log.warn({ ui: remote.ui }, 'the web UI is not built (no index.html): `npm run build` builds it; the API is served without it');
  if (remote) app.addHook('onSend', gzipLargeJson);

  // A volume of a shared pool may be known to the cluster before this node has seen it.
  app.addHook('preHandler', async (req) => {
    const name = (req.params as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string') await service.lookup(name).catch(() => undefined);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof FerryError) {
      return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
      return reply.code(415).send({ error: { code: 'invalid', message: `request body: send JSON with "content-type: application/json" (got ${req.headers['content-type'] ? shown(req.headers['content-type'], 40) : 'no content type'})` } });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || /prototype property/.test(err.message)) {
      return reply.code(400).send({ error: { code: 'invalid', message: `request body: ${err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'empty, but content-type is application/json' : 'not valid JSON (keys named __proto__ or constructor are refused)'}` } });
    }
    if (err.statusCode && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: { code: 'invalid', message: err.message } });
    }
    req.log.error({ err: errorMessage(err), url: req.url }, 'API request failed');
    // Over TCP an unexpected error says nothing of ferryd's insides; the log has it.
    const message = remote ? `internal error (request ${req.id}); ferryd's log has the details` : errorMessage(err);
    return reply.code(500).send({ error: { code: 'internal', message } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no API route ${req.method} ${req.url}; see docs/api.md` } }),
  );

  hubRoutes(app, { service, facts, hub, cluster, backups: extra?.backups });
  volumeRoutes(app, service, { usage: hub.usage, history: extra?.backups.history, register: hub.registerWithDocker, schedules: hub.schedules });
  snapshotRoutes(app, snapshots, extra?.jobs);
  if (extra) backupRoutes(app, extra.backups, extra.jobs);
  trashRoutes(app, service, { usage: hub.usage });

  return app;
}
