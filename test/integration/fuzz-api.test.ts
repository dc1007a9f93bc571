// Property-based tests: generated bad input thrown at every route of the REST API (unix socket) of a real ferryd in a sandbox.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFile, stat } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../helpers/ferryd.js';
import { join } from 'node:path';
import { startSandbox, outsideTree, type Sandbox } from '../helpers/sandbox.js';
import { oddName, oddOptions, oddValue, rawBodies, validName } from '../helpers/fuzz-inputs.js';
import { Tally, fuzzParams, checkCase, checkBatch, assertAlive, SEED, rawRequest } from '../helpers/fuzz.js';

type Route = { method: string; path: string };

/** A path parameter: encoded odd names, traversal written raw or percent-encoded, malformed escapes. */
const pathParam = fc.oneof(
  { arbitrary: oddName.map(encodeAll), weight: 6 },
  { arbitrary: fc.constantFrom('..', '%2e%2e', '%2E%2E%2Fetc', '..%2f..%2fetc', '%00', 'a%00b', '%ZZ', '%', '%c0%af', '%ff', 'a@1234567890123', 'x'.repeat(8_000)), weight: 2 },
  { arbitrary: validName, weight: 2 },
);

const queryString = fc.oneof(
  fc.constant(''),
  fc.dictionary(fc.constantFrom('purge', 'force', 'usage', 'all', 'wait', 'target', 'volume', 'url', 'x', '__proto__', ''), fc.oneof(fc.constantFrom('true', 'false', '1', '0', 'yes', '', 't', 'file:///nonexistent'), fc.string({ maxLength: 20 })), { maxKeys: 3 }).map((q) => `?${new URLSearchParams(q).toString()}`),
  fc.constantFrom('?purge=true&purge=false', '?purge', '?usage=true&usage=true', '?%ZZ=1', '?a[b]=1', '?target=t&target=t', '?url=file%3A%2F%2F%2F%2500', '?target=t&volume=%00'),
);

/** Body fields every route reads, each odd in turn (the route's own schema decides which are allowed). */
const fields: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    name: fc.oneof({ arbitrary: oddName, weight: 4 }, { arbitrary: oddValue, weight: 1 }),
    options: oddOptions,
    labels: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string({ maxLength: 10 }), oddValue), { maxKeys: 3 }), oddValue),
    as: oddName,
    message: fc.oneof(fc.string({ maxLength: 100 }), oddValue),
    branch: oddName,
    ref: oddName,
    hard: oddValue,
    create: oddValue,
    pause: oddValue,
    exec: oddValue,
    restartContainers: oddValue,
    target: fc.oneof(fc.constantFrom('t', 'nope', '', 'file://@SANDBOX@/targets/new', 'file:///%00', 'file:///a%2Fb', 's3:x'), oddName),
    snapshot: oddName,
    encryption: fc.oneof(fc.constantFrom('aes-256-gcm', 'none', 'rot13'), oddValue),
    url: fc.oneof(fc.constantFrom('file:///nonexistent?backup=abcd&volume=v', 'file:///%00?backup=abcd&volume=v', 'file:///x%2Fy?backup=abcd&volume=v', 'file://host/x?backup=abcd', 'nope'), oddName),
    volume: oddName,
    readData: oddValue,
    role: fc.oneof(fc.constantFrom('read', 'admin', 'root'), oddValue),
    extra: oddValue,
  },
  { requiredKeys: [] },
);

/** Routes whose success changes things that a fuzz run must not do for real (outside the sandbox). */
function fill(path: string, params: string[]): string {
  let i = 0;
  return path.replace(/\{[^}]+\}/g, () => params[i++ % params.length]!);
}

describe('fuzz: the REST API', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let pid: number;
  let tree: string[];
  let routes: Route[] = [];
  const tally = new Tally();
  const ping = () => rawRequest(sb.f.apiSocket, 'GET', '/v1/status');

  before(async () => {
    sb = await startSandbox();
    pid = sb.f.pid;
    tree = await outsideTree(sb);
    const doc = parseYaml(await readFile(join(ROOT, 'docs', 'openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
    for (const [path, ops] of Object.entries(doc.paths)) for (const m of Object.keys(ops)) if (['get', 'post', 'put', 'delete', 'patch'].includes(m)) routes.push({ method: m.toUpperCase(), path });
    assert.ok(routes.length > 30, `routes in docs/openapi.yaml: ${routes.length}`);
    console.log(`fuzz seed ${SEED}, ${routes.length} routes`);
  });
  after(async () => {
    tally.print('REST API cases per input class');
    await sb?.destroy();
  });

  it('every route of docs/openapi.yaml: odd bodies, query strings and path parameters get a 4xx naming the field, never a 5xx, a crash or a write outside', async () => {
    let n = 0;
    const logOffset = (await stat(`${sb.f.dir}/ferryd.log`)).size;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1000 }), fc.array(pathParam, { minLength: 2, maxLength: 2 }), queryString, rawBodies(fields, 1024 * 1024), async (ri, params, query, generated) => {
        let b = generated;
        const r = routes[ri % routes.length]!;
        if (r.path === '/v1/trash' && r.method === 'DELETE') return; // purges everything: covered by the plugin lifecycle
        tally.add(`api ${b.kind}`);
        if (query !== '') tally.add('api query string');
        if (r.path.includes('{')) tally.add('api path parameter');
        const url = fill(r.path, params) + query;
        // backup targets given by URL are created where asked: only inside the sandbox's targets/
        if (typeof b.body === 'string') b = { ...b, body: b.body.replaceAll('@SANDBOX@', sb.root) };
        const what = `${r.method} ${url.slice(0, 200)} (${b.kind}) ${typeof b.body === 'string' ? b.body.slice(0, 200) : ''}`;
        const headers: Record<string, string> = b.contentType !== undefined && b.body !== undefined ? { 'content-type': b.contentType } : {};
        const strings = [...params.map((p) => safeDecode(p)), ...(typeof b.body === 'string' && b.body.length < 20_000 ? stringsIn(b.body) : [])];
        await checkCase(sb, strings, () => rawRequest(sb.f.apiSocket, r.method, url, r.method === 'GET' ? undefined : b.body, r.method === 'GET' ? {} : headers), 'api', what);
        if (++n % 250 === 0) {
          await assertAlive(sb, pid, ping);
          await checkBatch(sb, tree, logOffset);
        }
      }),
      fuzzParams(0.45),
    );
    await assertAlive(sb, pid, ping);
    await checkBatch(sb, tree, logOffset);
  });

  it('volume routes with good JSON and one odd field each: create, inspect, snapshot, commit, branch, checkout, reset, backup, restore, undelete', async () => {
    const logOffset = (await stat(`${sb.f.dir}/ferryd.log`)).size;
    const call = fc.oneof(
      fc.record({ m: fc.constant('POST'), p: fc.constant('/v1/volumes'), body: fc.record({ name: fc.oneof(validName, oddName), options: fc.oneof(oddOptions, fc.constant({ pool: 'pool2' }), fc.constant({ uid: '1000', gid: '1000', mode: '0750' })) }, { requiredKeys: ['name'] }) }),
      fc.record({ m: fc.constantFrom('POST', 'GET'), p: fc.tuple(validName, fc.constantFrom('snapshots', 'commits', 'branches', 'checkout', 'reset', 'backups', 'log')).map(([v, s]) => `/v1/volumes/${v}/${s}`), body: fields }),
      fc.record({ m: fc.constant('DELETE'), p: validName.map((v) => `/v1/volumes/${v}`), body: fc.constant(undefined) }),
      fc.record({ m: fc.constant('POST'), p: fc.oneof(validName, oddName).map((v) => `/v1/trash/${encodeAll(`${v}@1700000000000`)}/restore`), body: fc.record({ as: oddName }, { requiredKeys: [] }) }),
      fc.record({ m: fc.constant('POST'), p: fc.constant('/v1/backups/restore'), body: fc.record({ url: fields.map((f) => f.url ?? 'x'), volume: oddName, options: oddOptions }, { requiredKeys: ['url', 'volume'] }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 1, maxLength: 5 }), async (calls) => {
        for (const c of calls) {
          tally.add('api lifecycle call');
          const text = c.body === undefined ? undefined : JSON.stringify(c.body);
          const what = `${c.m} ${c.p.slice(0, 200)} ${text?.slice(0, 300) ?? ''}`;
          await checkCase(sb, [...stringsIn(text ?? '""'), safeDecode(c.p)], () => rawRequest(sb.f.apiSocket, c.m, c.p, c.m === 'GET' ? undefined : text, text !== undefined && c.m !== 'GET' ? { 'content-type': 'application/json' } : {}), 'api', what);
        }
      }),
      fuzzParams(0.05),
    );
    await assertAlive(sb, pid, ping);
    await checkBatch(sb, tree, logOffset);
  });
});

/** Percent-encode the UTF-8 bytes of any string (encodeURIComponent throws on a lone surrogate). */
function encodeAll(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function stringsIn(text: string): string[] {
  const out: string[] = [];
  try {
    JSON.parse(text, (_k, v) => (typeof v === 'string' ? (out.push(v), v) : v));
  } catch {
    out.push(text);
  }
  return out;
}
