/** The control API (REST over the unix socket, and TCP with tokens): routes that call the services. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { gzipSync } from 'node:zlib';
import { newHttpServer } from '../util/http.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { VolumeService } from '../volumes/service.js';
import type { SnapshotService } from '../snapshots/service.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { shown } from '../util/shown.js';
import type { Cluster } from '../cluster/cluster.js';
import type { JobRegistry } from '../jobs/jobs.js';
import type { BackupService } from '../backup/service.js';
import type { TokenStore, TokenInfo } from './tokens.js';
import type { Metrics } from './metrics.js';
import { openApiJson, openApiYaml } from './openapi.js';
import { serveUi } from './ui.js';
import type { StateWarnings } from '../util/state-warnings.js';
import type { UsageTracker } from '../volumes/usage.js';
import type { DoctorCheck } from '../doctor/check.js';
import type * as W from '../wire/types.js';

export interface DaemonFacts {
  version: string;
  node: string;
  pid: number;
  startedAt: string;
  dataDir: string;
  pluginSocket: string;
  apiSocket: string;
  /** The sockets systemd holds and handed over (socket activation), when it does. */
  socketActivated?: string[];
  trashRetention: string;
  /** The Docker Engine API ferryd asks (which containers reference a volume), or `none` (no engine on this host). */
  dockerHost?: string;
  /** The TCP address the API also listens on (HOST:PORT), when it does. */
  apiListen?: string;
  /** How ferryd runs: a host daemon (legacy plugin socket) or a managed Docker plugin. */
  runsAs?: 'host-daemon' | 'managed-plugin';
  /** Where mounted volumes are bind-mounted for Docker (a managed plugin's propagatedMount), when set. */
  mountRoot?: string;
  /** Names of the configured backup targets (what `target` takes in the backup routes). */
  backupTargets?: string[];
  /** Problems found in ferryd's own state and worked around (listed by `ferry status` and `ferry doctor`). */
  warnings?: StateWarnings;
}

/** The Volume Hub's parts of the API: tokens, /metrics, and serving over TCP with bearer tokens. */
export interface HubOptions {
  /** Token routes (/v1/tokens): served on the unix socket only. */
  tokens?: TokenStore;
  /** GET /metrics in the Prometheus text format. */
  metrics?: Metrics;
  /** The space volumes take (data, snapshots, trash), cached: shown in the volume and trash listings. */
  usage?: UsageTracker;
  /** GET /v1/capacity: the pools' space over the last day (the Hub's charts). */
  capacity?: () => W.CapacityHistory;
  /** GET /v1/doctor: ferryd's checks of itself (`ferry doctor`). */
  doctor?: () => Promise<DoctorCheck[]>;
  /**
   * This app serves TCP: every request needs `Authorization: Bearer TOKEN` (401 otherwise), a read token
   * only reads (403 on anything else), token routes are refused (403: tokens are managed on the host).
   */
  remote?: { tokens: TokenStore; https?: { cert: Buffer; key: Buffer }; /** Serve the web UI (built into this directory) at `/`. */ ui?: string };
}

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
  if (typeof payload !== 'string' || payload.length < 16 * 1024 || reply.getHeader('content-encoding')) return payload;
  if (!String(reply.getHeader('content-type') ?? '').startsWith('application/json')) return payload;
  if (!/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return payload;
  reply.header('content-encoding', 'gzip').header('vary', 'accept-encoding');
  return gzipSync(payload, { level: 4 });
}

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

const labelsSchema = z.record(z.string(), z.string());
const createBody = z.strictObject({
  name: z.string(),
  options: z.record(z.string(), z.string()).optional(),
  labels: labelsSchema.optional(),
});
const restoreBody = z.strictObject({ as: z.string().optional() }).optional();
const flag = z.enum(['true', 'false', '1', '0']).optional().transform((v) => v === 'true' || v === '1');
const removeQuery = z.strictObject({ purge: flag, force: flag });
const inspectQuery = z.strictObject({ usage: flag });
const snapshotBody = z.strictObject({ name: z.string().optional(), pause: z.boolean().optional(), exec: z.string().min(1).optional(), background: z.boolean().optional() });
const restartBody = z.strictObject({ restartContainers: z.boolean().optional() });
const commitBody = z.strictObject({ message: z.string() });
const branchBody = z.strictObject({ name: z.string() });
const checkoutBody = z.strictObject({ branch: z.string(), create: z.boolean().optional(), restartContainers: z.boolean().optional() });
const resetBody = z.strictObject({ ref: z.string(), hard: z.literal(true, { message: 'only hard resets exist: pass "hard": true' }), restartContainers: z.boolean().optional() });
const listSnapshotsQuery = z.strictObject({ all: flag });
const targetBody = z.strictObject({ target: z.string().min(1) });
const initBody = z.strictObject({ target: z.string().min(1), encryption: z.enum(['aes-256-gcm', 'none']).optional() });
const backupBody = z.strictObject({ target: z.string().min(1), snapshot: z.string().min(1).optional() });
const backupListQuery = z.strictObject({ target: z.string().min(1), volume: z.string().optional() });
const urlQuery = z.strictObject({ url: z.string().min(1) });
const restoreBackupBody = z.strictObject({ url: z.string().min(1), volume: z.string(), options: z.record(z.string(), z.string()).optional() });
const verifyBody = z.strictObject({ target: z.string().min(1), readData: z.boolean().optional() });
const waitQuery = z.strictObject({ wait: flag });
const tokenBody = z.strictObject({ role: z.enum(['read', 'admin'], { message: 'role must be read or admin' }), name: z.string().optional() });

type Issue = z.core.$ZodIssue;

/** One problem of a request, in words: the field, what it should be, never "received undefined". */
function issueText(i: Issue, fields: string[]): string {
  const at = i.path.map((p) => (String(p).length > 40 ? shown(String(p), 40) : String(p))).join('.');
  if (i.code === 'invalid_type') {
    const received = / received (\w+)$/.exec(i.message)?.[1];
    if (received === 'undefined') return `${at ? `${at}: ` : ''}missing (a ${i.expected})`;
    return `${at ? `${at}: ` : ''}must be a ${i.expected === 'object' ? 'JSON object' : i.expected}, not ${received === 'array' ? 'an array' : (received ?? 'that')}`;
  }
  if (i.code === 'unrecognized_keys') {
    const keys = i.keys.slice(0, 3).map((k) => shown(k, 40)).join(', ') + (i.keys.length > 3 ? ` and ${i.keys.length - 3} more` : '');
    return `${at ? `${at}: ` : ''}unknown field${i.keys.length > 1 ? 's' : ''} ${keys}${fields.length && !at ? `; accepted: ${fields.join(', ')}` : ''}`;
  }
  return `${at ? `${at}: ` : ''}${i.message}`;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const inner = schema instanceof z.ZodOptional ? schema.unwrap() : schema;
  const fields = inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
  throw new FerryError('invalid', `bad ${what}: ${r.error.issues.map((i) => issueText(i, fields)).join('; ')}`);
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

  app.get('/v1/openapi.yaml', async (_req, reply) => reply.type('application/yaml; charset=utf-8').send(await openApiYaml()));
  app.get('/v1/openapi.json', async () => openApiJson());

  if (hub.metrics) {
    const metrics = hub.metrics;
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  }

  if (hub.tokens) {
    const tokens = hub.tokens;
    const local = { config: { localOnly: true } };
    app.get('/v1/tokens', local, async () => ({ tokens: tokens.list() }));
    app.post('/v1/tokens', local, async (req, reply) => {
      const b = parse(tokenBody, req.body ?? {}, 'request body');
      return reply.code(201).send(await tokens.create(b.role, b.name));
    });
    // :token, not :name: the preHandler above looks every :name up as a volume
    app.delete<{ Params: { token: string } }>('/v1/tokens/:token', local, async (req) => ({ removed: await tokens.remove(req.params.token) }));
  }

  app.get('/v1/status', async (req): Promise<W.Status> => ({
    ...facts,
    warnings: facts.warnings?.list() ?? [],
    uptimeSeconds: Math.round((Date.now() - Date.parse(facts.startedAt)) / 1000),
    pools: await service.poolStatus(),
    counts: service.counts(),
    ...(extra?.backups.targetProblems().length ? { targetProblems: extra.backups.targetProblems() } : {}),
    cluster: cluster?.active
      ? { ...cluster.settings, nodes: await cluster.nodes(), attachments: [...(await service.attachmentsByVolume()).values()].flat() }
      : null,
    ...(req.token ? { token: { name: req.token.name, role: req.token.role } } : {}),
  }));

  app.get('/v1/capacity', async (): Promise<W.CapacityHistory> => {
    if (!hub.capacity) throw new FerryError('unavailable', 'this ferryd keeps no capacity history');
    return hub.capacity();
  });

  app.get('/v1/doctor', async (): Promise<{ checks: W.DoctorCheck[] }> => {
    if (!hub.doctor) throw new FerryError('unavailable', 'this ferryd does not run doctor checks');
    return { checks: await hub.doctor() };
  });

  app.get('/v1/volumes', async (): Promise<W.VolumeList> => {
    await service.syncAll();
    const attachments = await service.attachmentsByVolume();
    const history = extra?.backups.history;
    const list = service.list();
    // Docker is asked only when something is mounted here (one call, cached for 5 s)
    const holding = list.some((v) => v.mounts > 0) ? await service.containersHolding() : undefined;
    return {
      volumes: list.map((v) => {
        const t = history?.lastSuccess(v);
        const failing = history?.failing(v) ?? [];
        const containers = v.mounts > 0 ? holding?.get(v.name) : undefined;
        const snap = hub.usage?.lastSnapshotOf(v.name);
        return {
          ...v,
          attachments: attachments.get(v.name) ?? [],
          ...(containers?.length ? { containers } : {}),
          ...(snap ? { lastSnapshotAt: snap } : {}),
          ...(t !== undefined ? { lastBackupAt: new Date(t * 1000).toISOString() } : {}),
          ...(failing.length ? { backupFailing: failing } : {}),
          ...(hub.usage ? { usage: hub.usage.of(v) } : {}),
        };
      }),
    };
  });

  app.post('/v1/volumes', async (req, reply) => {
    const body = parse(createBody, req.body ?? {}, 'request body');
    const v: W.Volume = await service.create(body.name, body.options ?? {}, body.labels ?? {});
    void hub.usage?.pass().catch(() => undefined); // a new volume's size, soon
    return reply.code(201).send(v);
  });

  app.get<{ Params: { name: string } }>('/v1/volumes/:name', async (req): Promise<W.VolumeDetail> => {
    const q = parse(inspectQuery, req.query, 'query');
    const v = service.get(req.params.name);
    const containers = await service.containersUsing(v.name);
    const attachments = v.shared ? ((await service.attachmentsByVolume()).get(v.name) ?? []) : [];
    // ?usage=true measures now; otherwise the cached figures (with the time of their walk)
    const usage = hub.usage ? (q.usage ? await hub.usage.refresh(v.name) : hub.usage.of(v)) : undefined;
    const usageBytes = q.usage ? (usage?.dataBytes ?? (await service.usage(v.name))) : undefined;
    return { ...v, containers: containers ?? null, attachments, ...(usage ? { usage } : {}), ...(usageBytes !== undefined ? { usageBytes } : {}) };
  });

  app.delete<{ Params: { name: string } }>('/v1/volumes/:name', async (req) => {
    const q = parse(removeQuery, req.query, 'query');
    const r = await service.removeVolume(req.params.name, { purge: q.purge, force: q.force, checkReferences: true });
    if (r.trash) void hub.usage?.measureTrash().catch(() => undefined); // its size, in the background
    return { removed: req.params.name, purged: q.purge, trash: r.trash ?? null, overrode: r.overrode };
  });

  type Vol = { Params: { name: string } };
  type Snap = { Params: { name: string; ref: string } };
  app.get<Vol>('/v1/volumes/:name/snapshots', async (req): Promise<W.SnapshotList> => ({ snapshots: await snapshots.list(req.params.name, parse(listSnapshotsQuery, req.query, 'query')) }));
  app.post<Vol>('/v1/volumes/:name/snapshots', async (req, reply) => {
    const { background, ...b } = parse(snapshotBody, req.body ?? {}, 'request body');
    if (background && extra) {
      // a job: answered at once (after what would be refused at once), followed at GET /v1/jobs/ID
      await snapshots.checkCreate(req.params.name, b);
      const job: W.Job = extra.jobs.start('snapshot', req.params.name, (report) => snapshots.create(req.params.name, { ...b, onProgress: report }));
      return reply.code(202).send(job);
    }
    const s: W.Snapshot = await snapshots.create(req.params.name, b);
    return reply.code(201).send(s);
  });
  app.get<Snap>('/v1/volumes/:name/snapshots/:ref', async (req): Promise<W.Snapshot> => snapshots.get(req.params.name, req.params.ref));
  app.delete<Snap>('/v1/volumes/:name/snapshots/:ref', async (req) => ({ removed: await snapshots.remove(req.params.name, req.params.ref) }));
  app.post<Snap>('/v1/volumes/:name/snapshots/:ref/restore', async (req) => {
    const b = parse(restartBody, req.body ?? {}, 'request body');
    return { restored: await snapshots.restore(req.params.name, req.params.ref, b) };
  });
  app.post<Vol>('/v1/volumes/:name/commits', async (req, reply) => reply.code(201).send(await snapshots.commit(req.params.name, parse(commitBody, req.body ?? {}, 'request body').message)));
  app.get<Vol>('/v1/volumes/:name/log', async (req): Promise<W.CommitLog> => snapshots.log(req.params.name));
  app.get<Vol>('/v1/volumes/:name/branches', async (req): Promise<W.BranchList> => snapshots.branches(req.params.name));
  app.post<Vol>('/v1/volumes/:name/branches', async (req, reply) => reply.code(201).send(await snapshots.createBranch(req.params.name, parse(branchBody, req.body ?? {}, 'request body').name)));
  app.post<Vol>('/v1/volumes/:name/checkout', async (req) => {
    const b = parse(checkoutBody, req.body ?? {}, 'request body');
    return snapshots.checkout(req.params.name, b.branch, b);
  });
  app.post<Vol>('/v1/volumes/:name/reset', async (req) => {
    const b = parse(resetBody, req.body ?? {}, 'request body');
    return { commit: await snapshots.reset(req.params.name, b.ref, b) };
  });

  if (extra) {
    const { jobs, backups } = extra;
    app.get('/v1/jobs', async (): Promise<W.JobList> => ({ jobs: jobs.list() }));
    app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req): Promise<W.Job> => {
      const q = parse(waitQuery, req.query, 'query');
      return q.wait ? jobs.wait(jobs.get(req.params.id).id) : jobs.get(req.params.id);
    });
    app.post('/v1/backups/init', async (req, reply) => {
      const b = parse(initBody, req.body ?? {}, 'request body');
      return reply.code(201).send(await backups.init(b.target, b.encryption ? { encryption: b.encryption } : {}));
    });
    app.post<Vol>('/v1/volumes/:name/backups', async (req, reply) => {
      const b = parse(backupBody, req.body ?? {}, 'request body');
      const job: W.Job = await backups.startBackup(req.params.name, b);
      return reply.code(202).send(job);
    });
    app.get('/v1/backups', async (req): Promise<W.BackupList> => {
      const q = parse(backupListQuery, req.query, 'query');
      return backups.list(q.target, q.volume);
    });
    app.get('/v1/backups/inspect', async (req) => backups.inspect(parse(urlQuery, req.query, 'query').url));
    app.delete('/v1/backups', async (req) => backups.remove(parse(urlQuery, req.query, 'query').url));
    app.post('/v1/backups/restore', async (req, reply) => {
      const b = parse(restoreBackupBody, req.body ?? {}, 'request body');
      return reply.code(202).send(await backups.startRestore(b.url, b.volume, b.options ?? {}));
    });
    app.post('/v1/backups/prune', async (req, reply) => reply.code(202).send(backups.startPrune(parse(targetBody, req.body ?? {}, 'request body').target)));
    app.post('/v1/backups/verify', async (req, reply) => {
      const b = parse(verifyBody, req.body ?? {}, 'request body');
      return reply.code(202).send(backups.startVerify(b.target, b.readData ?? false));
    });
  }

  app.get('/v1/trash', async (req): Promise<W.TrashList> => {
    const q = parse(inspectQuery, req.query, 'query');
    if (q.usage) await hub.usage?.measureTrash();
    const usage = hub.usage;
    return { trash: service.trashList().map((t) => (usage ? { ...t, ...usage.trashOf(t.id) } : t)) };
  });

  app.post<{ Params: { ref: string } }>('/v1/trash/:ref/restore', async (req, reply) => {
    const body = parse(restoreBody, req.body ?? undefined, 'request body');
    return reply.code(201).send(await service.undelete(req.params.ref, body?.as));
  });

  app.delete<{ Params: { ref: string } }>('/v1/trash/:ref', async (req) => ({ purged: await service.trashPurge([req.params.ref]) }));
  app.delete('/v1/trash', async () => ({ purged: await service.trashPurge('all') }));

  return app;
}
