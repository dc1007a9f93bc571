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
});
