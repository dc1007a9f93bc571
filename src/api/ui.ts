/** Serves the Volume Hub's built files (dist/ui): the page at / and its assets. */
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { builtPath } from '../util/built-files.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Where `npm run build` puts the web UI (dist/ui). */
export const UI_DIR = builtPath('../ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/** A file name under assets/ as Vite writes them: no slashes, no dot-files, so no way out of the directory. */
const ASSET = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/**
 * The Volume Hub web UI: static files, served on the TCP listener without a token (they hold no data;
 * every API call the page makes carries the bearer token the user typed). `/` is the page, `/assets/F`
 * its hashed files (cached for good). Only files directly in DIR/assets can be read: names are checked
 * against a strict pattern, never joined from a raw path.
 */
export function serveUi(app: FastifyInstance, dir: string = UI_DIR): boolean {
  if (!existsSync(join(dir, 'index.html'))) return false;
  const config = { config: { publicUi: true } };
  // The files are small and never change while ferryd runs: read and gzip each once.
  const cache = new Map<string, Promise<{ raw: Buffer; gz: Buffer } | undefined>>();
  const load = (path: string) => {
    let hit = cache.get(path);
    if (!hit) {
      hit = readFile(path).then(
        (raw) => ({ raw, gz: gzipSync(raw) }),
        () => undefined,
      );
      cache.set(path, hit);
    }
    return hit;
  };
  const send = async (req: FastifyRequest, reply: FastifyReply, path: string, type: string, cacheControl: string) => {
    const file = await load(path);
    if (!file) return reply.code(404).send({ error: { code: 'not_found', message: 'no such UI file' } });
    reply.type(type).header('cache-control', cacheControl).header('x-content-type-options', 'nosniff').header('vary', 'accept-encoding');
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(file.gz);
    return reply.send(file.raw);
  };
  app.get('/', config, async (req, reply) => {
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    return send(req, reply, join(dir, 'index.html'), TYPES['.html']!, 'no-cache');
  });
  app.get<{ Params: { file: string } }>('/assets/:file', config, async (req, reply) => {
    const file = req.params.file;
    const ext = /\.[a-z0-9]+$/.exec(file)?.[0] ?? '';
    if (!ASSET.test(file) || file.includes('..') || !TYPES[ext]) return reply.code(404).send({ error: { code: 'not_found', message: 'no such UI file' } });
    return send(req, reply, join(dir, 'assets', file), TYPES[ext]!, 'public, max-age=31536000, immutable');
  });
  return true;
}
