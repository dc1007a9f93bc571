/** Docker's volume plugin protocol on its unix socket: the eight calls, mapped onto the volume service. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { newHttpServer } from '../util/http.js';
import type { Logger } from 'pino';
import type { VolumeService } from '../volumes/service.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { sizeText } from '../util/size.js';
import { JsonItems } from '../util/json-list.js';

/** Docker's legacy plugin protocol: every call is a POST of JSON; answers carry this content type. */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.1+json';
export const PLUGIN_BODY_LIMIT = 1024 * 1024;

type Body = Record<string, unknown>;
/** An answer: an object to encode, or one encoded already (the List of 10,000 volumes, kept while the catalog holds). */
type Handler = (body: Body) => Promise<Body | Buffer> | Body | Buffer;

export interface PluginServerOptions {
  service: VolumeService;
  log: Logger;
  /** `global` when the node serves shared pools (Swarm then creates a volume once per cluster). */
  scope: () => 'local' | 'global';
  /** Told of every call to a known endpoint once answered (for /metrics): endpoint path, success, seconds. */
  observe?: (endpoint: string, ok: boolean, seconds: number) => void;
  /** Called after a successful Create, without waiting (ferryd learns the volume's labels from Docker then). */
  afterCreate?: (name: string) => void;
  /** Called after a successful Mount (the usage tracker walks the volume again after its Unmount). */
  afterMount?: (name: string) => void;
  /** Why a Create of a volume that does not exist must be refused now (ferryd itself is registering the name with Docker: docker/registration.ts). */
  refuseCreate?: (name: string) => string | undefined;
}

function str(body: Body, key: string): string {
  const v = body[key];
  if (v === undefined || v === null) throw new FerryError('invalid', `request field ${key} is missing`);
  if (typeof v !== 'string') throw new FerryError('invalid', `request field ${key} must be a string`);
  return v;
}

/**
 * The Docker volume plugin endpoints, exactly as moby's plugin client calls them
 * (docs/extend/plugins_volume.md). Nothing here but decoding, calling the service and encoding.
 */
export function buildPluginServer({ service, log, scope, observe, afterCreate, afterMount, refuseCreate }: PluginServerOptions): FastifyInstance {
  const send = (reply: FastifyReply, status: number, body: Body | Buffer) =>
    reply.code(status).header('content-type', PLUGIN_CONTENT_TYPE).send(Buffer.isBuffer(body) ? body : JSON.stringify(body));
  // Docker's List, encoded, and the catalog version it was made at (`docker volume ls` asks it whole every time)
  let listed: { version: number; body: Buffer } | undefined;
  // (each volume's entry, made again only when its record changed: after a Mount, one of 10,000)
  const listItems = new JsonItems();

  // (filled in below, once the endpoints exist)
  const fast: { take: (req: IncomingMessage, res: ServerResponse) => boolean } = { take: () => false };
  let closing = false;
  const app = newHttpServer(log, 'plugin', PLUGIN_BODY_LIMIT, { badUrl: (reply, message) => send(reply, 400, { Err: message }), errorBody: (message) => ({ Err: message }), before: (req, res) => fast.take(req, res) });

  // Docker sends JSON with varying (or no) content types: take every body as text and parse it here,
  // so that malformed JSON gets a protocol answer instead of a framework one.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  // An empty content-type header is no content type (Fastify would answer its own 415, not the protocol's).
  app.addHook('onRequest', async (req) => {
    if (req.headers['content-type']?.trim() === '') delete req.headers['content-type'];
  });

  const endpoints: Record<string, Handler> = {
    '/Plugin.Activate': () => ({ Implements: ['VolumeDriver'] }),
    '/VolumeDriver.Capabilities': () => ({ Capabilities: { Scope: scope() } }),
    '/VolumeDriver.Create': async (b) => {
      const opts = b.Opts ?? b.Options;
      const name = str(b, 'Name');
      const refused = refuseCreate?.(name);
      if (refused !== undefined && !(await service.lookup(name).then(() => true, () => false))) throw new FerryError('not_found', refused);
      const v = await service.create(name, opts ?? {}, {}, { ifMissing: true, dockerOptions: opts });
      afterCreate?.(v.name);
      return { Err: '' };
    },
    '/VolumeDriver.Remove': async (b) => {
      await service.remove(str(b, 'Name'));
      return { Err: '' };
    },
    '/VolumeDriver.Mount': async (b) => {
      const name = str(b, 'Name');
      const Mountpoint = await service.mount(name, b.ID);
      afterMount?.(name);
      return { Mountpoint, Err: '' };
    },
    '/VolumeDriver.Unmount': async (b) => {
      await service.unmount(str(b, 'Name'), b.ID);
      return { Err: '' };
    },
    '/VolumeDriver.Path': async (b) => ({ Mountpoint: (await service.lookup(str(b, 'Name'))).mountpoint, Err: '' }),
    '/VolumeDriver.Get': async (b) => {
      const v = await service.lookup(str(b, 'Name'));
      const size = v.options.size !== undefined ? await service.sizes.forGet(v.name) : undefined;
      return {
        Volume: {
          Name: v.name,
          Mountpoint: v.mountpoint,
          CreatedAt: v.createdAt,
          // mode as the octal the user wrote (`docker volume inspect` would show 0700 as 448)
          // size as people write it; the limit and what counts against it (btrfs qgroups) beside the options
          Status: {
            pool: v.pool,
            node: v.node,
            access: v.access,
            mounts: v.mounts,
            options: { ...v.options, ...(v.options.mode !== undefined ? { mode: `0${v.options.mode.toString(8)}` } : {}), ...(v.options.size !== undefined ? { size: sizeText(v.options.size) } : {}) },
            ...(size ? { size: { limit: sizeText(size.limitBytes), limitBytes: size.limitBytes, usedBytes: size.usedBytes, enforcedBytes: size.enforcedBytes, ...(size.problem ? { problem: size.problem } : {}) } } : {}),
          },
        },
        Err: '',
      };
    },
    '/VolumeDriver.List': async () => {
      await service.syncAll();
      const version = service.version;
      if (listed?.version !== version) {
        const keyed = function* () {
          for (const [name, stamp] of service.listStamps()) yield { key: name, from: [stamp], x: name };
        };
        const body = listItems.list([], '{"Volumes":[', keyed(), (name) => {
          const v = service.get(name);
          return { Name: v.name, Mountpoint: v.mountpoint, CreatedAt: v.createdAt };
        }, '],"Err":""}', listed?.body.length ?? service.count * 128);
        listed = { version, body };
      }
      return listed.body;
    },
  };

  /** One call: decode the body, run the endpoint, the status and answer (the same for both ways in, below). */
  const serve = async (path: string, handler: Handler, text: string): Promise<[number, Body | Buffer]> => {
    let body: Body = {};
    const raw = text.trim();
    if (raw !== '') {
      try {
        body = JSON.parse(raw) as Body;
      } catch (err) {
        return [400, { Err: `malformed JSON in the request body of ${path}: ${errorMessage(err)}` }];
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        return [400, { Err: `the request body of ${path} must be a JSON object` }];
      }
    }
    const started = process.hrtime.bigint();
    try {
      const result = await handler(body);
      observe?.(path, true, Number(process.hrtime.bigint() - started) / 1e9);
      log.debug({ call: path, name: body.Name, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'plugin call');
      return [200, result];
    } catch (err) {
      observe?.(path, false, Number(process.hrtime.bigint() - started) / 1e9);
      const status = err instanceof FerryError && err.code === 'invalid' ? 400 : 500;
      // (Docker asks Get before every create: "no such volume" there is the expected answer, not news)
      const expected = err instanceof FerryError && err.code === 'not_found' && path === '/VolumeDriver.Get';
      const level = expected ? 'debug' : err instanceof FerryError && err.code !== 'internal' ? 'info' : 'error';
      log[level]({ call: path, name: body.Name, err: errorMessage(err) }, 'plugin call failed');
      return [status, { Err: errorMessage(err) }];
    }
  };

  app.all('/*', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    const handler = Object.hasOwn(endpoints, path) ? endpoints[path] : undefined;
    if (!handler) {
      return send(reply, 404, { Err: `unknown endpoint ${path}: this is the ferry volume plugin; it serves ${Object.keys(endpoints).join(', ')}` });
    }
    if (req.method !== 'POST') return send(reply, 405, { Err: `${path} takes POST, not ${req.method}` });
    const [status, body] = await serve(path, handler, typeof req.body === 'string' ? req.body : '');
    return send(reply, status, body);
  });

  // Docker's own calls: a POST of a short body with its length to a known endpoint, nothing else. They are
  // answered here, before Fastify (a tenth of a millisecond per call, ten calls per container); anything
  // else (another method, a query, a chunked or oversized body) and every call once the server is closing
  // go through Fastify's route above, whose answers are the same.
  fast.take = (req, res) => {
    const url = req.url ?? '';
    const handler = req.method === 'POST' && Object.hasOwn(endpoints, url) ? endpoints[url] : undefined;
    const length = req.headers['content-length'];
    if (!handler || closing || length === undefined || req.headers['transfer-encoding'] !== undefined || !(Number(length) <= PLUGIN_BODY_LIMIT)) return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      void serve(url, handler, Buffer.concat(chunks).toString('utf8')).then(([status, body]) => {
        const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
        res.writeHead(status, { 'content-type': PLUGIN_CONTENT_TYPE, 'content-length': payload.length });
        res.end(payload);
      });
    });
    return true;
  };
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return send(reply, 413, { Err: `request body too large: the limit is ${PLUGIN_BODY_LIMIT} bytes` });
    }
    return send(reply, err.statusCode ?? 500, { Err: errorMessage(err) });
  });

  return app;
}
