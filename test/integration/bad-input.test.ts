// Regression tests for the bad input the fuzz tests found (each the shrunk counterexample), against a real ferryd.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';

describe('bad input found by the fuzz tests', () => {
  let f: Ferryd;
  before(async () => {
    f = await startFerryd({ logLevel: 'info' });
  });
  after(async () => {
    await f?.destroy();
  });

  it('plugin: an empty content-type header is taken as none (was Fastify\'s 415 "Unsupported Media Type")', async () => {
    const a = await unixRequest(f.pluginSocket, 'POST', '/Plugin.Activate', '{}', { 'content-type': '' });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json, { Implements: ['VolumeDriver'] });
    const g = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.Get', 'false', { 'content-type': '' });
    assert.equal(g.status, 400);
    assert.equal(g.json.Err, 'the request body of /VolumeDriver.Get must be a JSON object');
  });

  it('plugin: Mount and Unmount without an ID say which field is missing (said "mount ID undefined"), a long ID is not echoed whole', async () => {
    assert.equal((await f.plugin('Create', { Name: 'idless' })).json.Err, '');
    const u = await f.plugin('Unmount', { Name: 'idless' });
    assert.equal(u.status, 400);
    assert.equal(u.json.Err, 'request field ID (the mount ID) is missing; Docker sends a hex ID');
    const n = await f.plugin('Mount', { Name: 'idless', ID: 7 });
    assert.equal(n.json.Err, 'request field ID (the mount ID) must be a string, not number; Docker sends a hex ID');
    const long = await f.plugin('Mount', { Name: 'idless', ID: 'x'.repeat(10_000) });
    assert.equal(long.json.Err, `mount ID "${'x'.repeat(64)}"... (10000 characters) is malformed: use up to 256 characters of [a-zA-Z0-9_.:-]; Docker sends a hex ID`);
    assert.equal((await f.plugin('Get', { Name: 'idless' })).json.Volume.Status.mounts, 0);
  });

  it('options named like Object.prototype members are unknown options (__proto__ was a 500 "parse is not a function")', async () => {
    for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const body = `{"Name":"proto-opt","Opts":{${JSON.stringify(key)}:"1"}}`;
      const a = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.Create', body, { 'content-type': 'application/json' });
      assert.equal(a.status, 400, `${key}: ${a.text}`);
      assert.match(a.json.Err, new RegExp(`^unknown volume option "${key}"; accepted options: access, backup, `));
      if (key === '__proto__') continue; // the API's JSON parser: see below
      const api = await unixRequest(f.apiSocket, 'POST', '/v1/volumes', `{"name":"proto-opt","options":{${JSON.stringify(key)}:"1"}}`, { 'content-type': 'application/json' });
      assert.equal(api.status, 400, `${key}: ${api.text}`);
      assert.match(api.json.error.message, new RegExp(`unknown volume option "${key}"`));
    }
    assert.match((await f.plugin('Get', { Name: 'proto-opt' })).json.Err, /no such volume: proto-opt/);
  });

  it('an option key or value of 10,000 characters is shown cut in the error, not echoed whole (messages were 10-20 kB)', async () => {
    const key = 'k'.repeat(10_000);
    const a = await f.plugin('Create', { Name: 'long-opt', Opts: { [key]: '1' } });
    assert.equal(a.status, 400);
    assert.match(a.json.Err, new RegExp(`^unknown volume option "${'k'.repeat(64)}"\\.\\.\\. \\(10000 characters\\); accepted options: `));
    for (const opt of ['backup', 'snapshot-schedule', 'mode', 'pool']) {
      const b = await f.plugin('Create', { Name: 'long-opt', Opts: { [opt]: `@${'v'.repeat(9_999)}` } });
      assert.equal(b.status, 400, b.text.slice(0, 200));
      assert.ok(b.json.Err.length < 600, `${opt}: ${b.json.Err.length} characters`);
      assert.match(b.json.Err, /\.\.\. \(10000 characters\)/);
    }
    const k = await f.plugin('Create', { Name: 'long-opt', Opts: { 'snapshot-schedule': '@hourly', 'snapshot-keep': `last=${'9'.repeat(9_995)}` } });
    assert.ok(k.json.Err.length < 600 && /snapshot-keep|keep/.test(k.json.Err), k.json.Err.slice(0, 300));
  });

  it('a volume name of 101-128 characters works through the API and CLI (was HTTP 414 from Fastify\'s 100-character parameter limit)', async () => {
    const name = 'n'.repeat(120);
    assert.equal((await f.cli('volume', 'create', name)).code, 0);
    const inspect = await f.cli('--json', 'volume', 'inspect', name);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal(JSON.parse(inspect.stdout).name, name);
    assert.equal((await f.cli('volume', 'rm', name)).code, 0);
    const tooLong = await unixRequest(f.apiSocket, 'GET', `/v1/volumes/${'n'.repeat(2000)}`);
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.json.error.message, /^a path parameter of "\/v1\/volumes\/n{52}"\.\.\. \(2012 characters\) is longer than 1024 characters$/);
  });

  it('a URL with a bad %-escape gets the server\'s own error format (was Fastify\'s {"error":"Bad Request","code":"FST_ERR_BAD_URL"})', async () => {
    const api = await unixRequest(f.apiSocket, 'GET', '/v1/volumes/%ZZ');
    assert.equal(api.status, 400);
    assert.deepEqual(api.json, { error: { code: 'invalid', message: 'the URL "/v1/volumes/%ZZ" is not valid: a "%" must start an escape of UTF-8 such as %2F' } });
    const plugin = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.%c0%af', '{}');
    assert.equal(plugin.status, 400);
    assert.deepEqual(plugin.json, { Err: 'the URL "/VolumeDriver.%c0%af" is not valid: a "%" must start an escape of UTF-8 such as %2F' });
  });

  it('a URL longer than Node\'s header limit gets the server\'s own error format (was Fastify\'s {"error":"Request Header Fields Too Large"}: fuzz seed 354748963)', async () => {
    const api = await unixRequest(f.apiSocket, 'GET', `/v1/volumes/${'x'.repeat(20_000)}`);
    assert.equal(api.status, 431);
    assert.deepEqual(api.json, { error: { code: 'invalid', message: "the request's URL and headers are longer than 16384 bytes in all: a path parameter, query string or header is too long" } });
    const plugin = await unixRequest(f.pluginSocket, 'POST', `/VolumeDriver.${'x'.repeat(20_000)}`, '{}');
    assert.equal(plugin.status, 431);
    assert.match(plugin.json.Err, /^the request's URL and headers are longer than 16384 bytes/);
    assert.equal((await unixRequest(f.apiSocket, 'GET', '/v1/volumes')).status, 200, 'ferryd still answers');
  });

  it('API: a missing body field is named as missing (was zod\'s "Invalid input: expected string, received undefined"), unknown fields are cut and listed with the accepted ones', async () => {
    assert.equal((await f.cli('volume', 'create', 'brancher')).code, 0);
    const a = await unixRequest(f.apiSocket, 'POST', '/v1/volumes/brancher/branches', '{}', { 'content-type': 'application/json' });
    assert.equal(a.status, 400);
    assert.equal(a.json.error.message, 'bad request body: name: missing (a string)');
    const r = await unixRequest(f.apiSocket, 'POST', '/v1/volumes/brancher/reset', '{"ref":7}', { 'content-type': 'application/json' });
    assert.equal(r.json.error.message, 'bad request body: ref: must be a string, not number; hard: only hard resets exist: pass "hard": true');
    const u = await unixRequest(f.apiSocket, 'POST', '/v1/volumes', JSON.stringify({ name: 'x1', ['k'.repeat(5000)]: 1 }), { 'content-type': 'application/json' });
    assert.equal(u.json.error.message, `bad request body: unknown field "${'k'.repeat(40)}"... (5000 characters); accepted: name, options, labels`);
    const arr = await unixRequest(f.apiSocket, 'POST', '/v1/volumes', '[]', { 'content-type': 'application/json' });
    assert.equal(arr.json.error.message, 'bad request body: must be a JSON object, not an array');
  });

  it('API: a body without content-type or with a __proto__ key says what to send (was "Unsupported Media Type" and "Body is not valid JSON")', async () => {
    const a = await unixRequest(f.apiSocket, 'POST', '/v1/tokens', '{}');
    assert.equal(a.status, 415);
    assert.equal(a.json.error.message, 'request body: send JSON with "content-type: application/json" (got no content type)');
    const p = await unixRequest(f.apiSocket, 'POST', '/v1/volumes', '{"name":"p1","options":{"__proto__":"1"}}', { 'content-type': 'application/json' });
    assert.equal(p.status, 400);
    assert.equal(p.json.error.message, 'request body: not valid JSON (keys named __proto__ or constructor are refused)');
  });
});
