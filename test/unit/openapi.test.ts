import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { buildApiServer, apiRoutes, type DaemonFacts } from '../../src/api/server.js';
import { TokenStore } from '../../src/api/tokens.js';
import { Metrics } from '../../src/api/metrics.js';
import { OPENAPI_FILE } from '../../src/api/openapi.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Build the API app as ferryd does (services are not called while routes are registered). */
async function appRoutes(remote: boolean): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-openapi-'));
  try {
    const log = pino({ level: 'silent' });
    const tokens = new TokenStore(join(dir, 'tokens.json'), log);
    const metrics = new Metrics({} as never, { processMetrics: false });
    const app = buildApiServer({} as never, {} as never, {} as DaemonFacts, log, undefined, { jobs: {} as never, backups: {} as never }, { tokens, metrics, ...(remote ? { remote: { tokens } } : {}) });
    await app.ready();
    const routes = apiRoutes(app).map((r) => `${r.method} ${r.url.replace(/:([a-zA-Z]+)/g, '{$1}')}`);
    await app.close();
    return routes.sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function documented(doc: { paths: Record<string, Record<string, unknown>> }): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) for (const m of Object.keys(item)) if (METHODS.includes(m)) out.push(`${m.toUpperCase()} ${path}`);
  return out.sort();
}

describe('OpenAPI document (docs/openapi.yaml)', () => {
  const doc = parseYaml(readFileSync(OPENAPI_FILE, 'utf8')) as { openapi: string; info: { version: string }; paths: Record<string, Record<string, unknown>>; components: Record<string, Record<string, unknown>> };

  it('is OpenAPI 3.1, versioned, with the /v1 prefix and bearer auth', () => {
    assert.match(doc.openapi, /^3\.1\./);
    assert.match(doc.info.version, /^1\.\d+\.\d+$/);
    for (const p of Object.keys(doc.paths)) assert.ok(p.startsWith('/v1/') || p === '/metrics', `${p} is outside /v1`);
    assert.deepEqual((doc.components.securitySchemes as Record<string, unknown>).bearerAuth, (doc.components.securitySchemes as Record<string, unknown>).bearerAuth);
    assert.equal(((doc.components.securitySchemes as Record<string, { scheme: string }>).bearerAuth!).scheme, 'bearer');
  });

  it('lists every route ferryd registers, and no other (unix socket and TCP apps alike)', async () => {
    const docRoutes = documented(doc);
    for (const remote of [false, true]) {
      const routes = await appRoutes(remote);
      assert.deepEqual(routes.filter((r) => !docRoutes.includes(r)), [], `routes missing from docs/openapi.yaml (remote=${remote})`);
      assert.deepEqual(docRoutes.filter((r) => !routes.includes(r)), [], `documented routes ferryd does not serve (remote=${remote})`);
    }
  });

  it('has path parameters matching the path templates, and every $ref resolves', () => {
    const text = JSON.stringify(doc);
    for (const m of text.matchAll(/"\$ref":"#\/([^"]+)"/g)) {
      let node: unknown = doc;
      for (const part of m[1]!.split('/')) node = (node as Record<string, unknown> | undefined)?.[part];
      assert.ok(node !== undefined, `unresolved $ref #/${m[1]}`);
    }
    const resolve = (p: { $ref?: string }) => (p.$ref ? (doc.components.parameters as Record<string, unknown>)[p.$ref.split('/').pop()!] : p) as { name: string; in: string };
    for (const [path, item] of Object.entries(doc.paths)) {
      const want = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      for (const m of Object.keys(item).filter((k) => METHODS.includes(k))) {
        const params = [...((item.parameters as Array<{ $ref?: string }>) ?? []), ...(((item[m] as { parameters?: Array<{ $ref?: string }> }).parameters) ?? [])].map(resolve);
        assert.deepEqual(params.filter((p) => p.in === 'path').map((p) => p.name).sort(), want, `${m.toUpperCase()} ${path}`);
        assert.ok((item[m] as { responses?: object }).responses, `${m.toUpperCase()} ${path} has no responses`);
      }
    }
  });
});
