/**
 * The web UI's static files on the TCP app (no browser needed): served without a token, only GET, only
 * files directly in the assets directory, never on the unix socket app; the API still needs its token.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApiServer, apiRoutes, type DaemonFacts } from '../../src/api/server.js';
import { TokenStore } from '../../src/api/tokens.js';

describe('web UI static files', () => {
  let dir: string;
  let tcp: FastifyInstance;
  let local: FastifyInstance;
  let token: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-ui-static-'));
    const ui = join(dir, 'ui');
    mkdirSync(join(ui, 'assets'), { recursive: true });
    writeFileSync(join(ui, 'index.html'), '<!doctype html><script type="module" src="/assets/app-1234.js"></script>');
    writeFileSync(join(ui, 'assets', 'app-1234.js'), 'console.log("ferry");'.repeat(100));
    writeFileSync(join(ui, 'assets', 'notes.txt'), 'not a UI file type');
    writeFileSync(join(dir, 'secret.json'), '{"secret": true}');
    const log = pino({ level: 'silent' });
    const tokens = new TokenStore(join(dir, 'tokens.json'), log);
    token = (await tokens.create('read', 'viewer')).token;
    const facts = {} as DaemonFacts;
    tcp = buildApiServer({} as never, {} as never, facts, log, undefined, undefined, { tokens, remote: { tokens, ui } });
    local = buildApiServer({} as never, {} as never, facts, log, undefined, undefined, { tokens });
    await tcp.ready();
    await local.ready();
  });
  after(async () => {
    await tcp?.close();
    await local?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves / and /assets/* without a token, gzipped on request, assets cached for good', async () => {
    const page = await tcp.inject({ method: 'GET', url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    const js = await tcp.inject({ method: 'GET', url: '/assets/app-1234.js', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.statusCode, 200);
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.match(String(js.headers['cache-control']), /immutable/);
    assert.match(gunzipSync(js.rawPayload).toString('utf8'), /^console\.log/);
    const head = await tcp.inject({ method: 'HEAD', url: '/' });
    assert.equal(head.statusCode, 200);
  });

  it('reads nothing outside the assets directory, and only UI file types', async () => {
    for (const url of ['/assets/..%2fsecret.json', '/assets/..%2f..%2fsecret.json', '/assets/%2e%2e%2f%2e%2e%2fsecret.json', '/assets/.hidden.js', '/assets/notes.txt', '/assets/missing.js', '/assets/a%00.js']) {
      const r = await tcp.inject({ method: 'GET', url });
      assert.equal(r.statusCode, 404, `${url}: ${r.statusCode} ${r.body}`);
      assert.doesNotMatch(r.body, /secret/);
    }
    // other paths are API paths: 401 without a token
    for (const url of ['/../secret.json', '/assets/sub/app-1234.js', '/index.html']) {
      const r = await tcp.inject({ method: 'GET', url });
      assert.notEqual(r.statusCode, 200, url);
      assert.doesNotMatch(r.body, /secret/);
    }
  });

  it('needs a token for everything else: the API, and other methods on the UI paths', async () => {
    assert.equal((await tcp.inject({ method: 'GET', url: '/v1/volumes' })).statusCode, 401);
    assert.equal((await tcp.inject({ method: 'POST', url: '/' })).statusCode, 401);
    assert.equal((await tcp.inject({ method: 'POST', url: '/', headers: { authorization: `Bearer ${token}` } })).statusCode, 403);
  });

  it('is not served on the unix socket app, and its files are not API routes', async () => {
    assert.equal((await local.inject({ method: 'GET', url: '/' })).statusCode, 404);
    assert.equal((await local.inject({ method: 'GET', url: '/assets/app-1234.js' })).statusCode, 404);
    assert.deepEqual(apiRoutes(tcp).filter((r) => !r.url.startsWith('/v1/') && r.url !== '/metrics'), []);
  });
});
