// Property-based tests: generated bad input thrown at the Docker plugin socket of a real ferryd in a sandbox.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stat } from 'node:fs/promises';
import { unixRequest, type HttpAnswer } from '../helpers/ferryd.js';
import { startSandbox, outsideTree, type Sandbox } from '../helpers/sandbox.js';
import { oddName, oddOptions, oddValue, rawBodies, validName, type RawBody } from '../helpers/fuzz-inputs.js';
import { Tally, fuzzParams, checkCase, checkBatch, assertAlive, SEED, PLUGIN_STATE_REFUSAL, rawRequest } from '../helpers/fuzz.js';

const ENDPOINTS = ['/Plugin.Activate', '/VolumeDriver.Create', '/VolumeDriver.Remove', '/VolumeDriver.Mount', '/VolumeDriver.Unmount', '/VolumeDriver.Get', '/VolumeDriver.List', '/VolumeDriver.Path', '/VolumeDriver.Capabilities'];
const LIMIT = 1024 * 1024;

/** Object bodies shaped like the plugin's requests, with every field odd in turn. */
const fields: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    Name: fc.oneof({ arbitrary: oddName, weight: 4 }, { arbitrary: oddValue, weight: 1 }),
    Opts: oddOptions,
    Options: oddOptions,
    ID: fc.oneof(fc.string({ maxLength: 70 }), oddValue),
    extra: oddValue,
  },
  { requiredKeys: [] },
);

/** The strings in a body that could name a path (the traversal probes use them). */
function stringsOf(b: RawBody): string[] {
  const text = typeof b.body === 'string' ? b.body : '';
  if (text.length > 20_000) return [];
  const out: string[] = [];
  try {
    JSON.parse(text, (_k, v) => (typeof v === 'string' ? (out.push(v), v) : v));
  } catch {
    out.push(text);
  }
  return out;
}

describe('fuzz: the plugin socket', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let pid: number;
  let tree: string[];
  const tally = new Tally();
  const ping = () => unixRequest(sb.f.pluginSocket, 'POST', '/VolumeDriver.Capabilities', '{}');

  before(async () => {
    sb = await startSandbox();
    pid = sb.f.pid;
    tree = await outsideTree(sb);
    console.log(`fuzz seed ${SEED}`);
  });
  after(async () => {
    tally.print('plugin socket cases per input class');
    await sb?.destroy();
  });

  const answerOk = (a: HttpAnswer, what: string) => {
    assert.ok(a.status !== 500 || PLUGIN_STATE_REFUSAL.test(String(a.json?.Err)), `${what}: 500 ${a.text.slice(0, 300)}`);
    assert.match(String(a.headers['content-type']), /^application\/vnd\.docker\.plugins\.v1\.1\+json/, `${what}: content type`);
    assert.ok(a.json !== undefined && typeof a.json === 'object', `${what}: not JSON: ${a.text.slice(0, 200)}`);
  };

  it('every endpoint, every body shape: 4xx with a clear Err or a proper answer, never a crash or a write outside', async () => {
    let n = 0;
    let logOffset = (await stat(`${sb.f.dir}/ferryd.log`)).size;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENDPOINTS), rawBodies(fields, LIMIT), fc.constantFrom('POST', 'POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE'), async (path, b, method) => {
        tally.add(`plugin ${b.kind}`);
        if (method !== 'POST') tally.add('plugin wrong method');
        const what = `${method} ${path} (${b.kind}) ${typeof b.body === 'string' ? b.body.slice(0, 200) : ''}`;
        const headers: Record<string, string> = b.contentType !== undefined ? { 'content-type': b.contentType } : {};
        const a = await checkCase(sb, stringsOf(b), () => rawRequest(sb.f.pluginSocket, method, path, b.body, headers), 'plugin', what);
        answerOk(a, what);
        if (method === 'POST' && a.status === 200 && path !== '/Plugin.Activate' && path !== '/VolumeDriver.Capabilities') assert.equal(typeof a.json.Err, 'string', what);
        if (++n % 250 === 0) {
          await assertAlive(sb, pid, ping);
          await checkBatch(sb, tree, logOffset);
        }
      }),
      fuzzParams(0.3),
    );
    await assertAlive(sb, pid, ping);
    await checkBatch(sb, tree, logOffset);
    logOffset = 0;
  });

  it('a volume lifecycle with odd names and options at each step keeps the catalog consistent', async () => {
    let logOffset = (await stat(`${sb.f.dir}/ferryd.log`)).size;
    const step = fc.record({
      call: fc.constantFrom('Create', 'Mount', 'Unmount', 'Remove', 'Get', 'Path'),
      name: fc.oneof(validName, oddName),
      opts: fc.oneof(fc.constant(undefined), oddOptions, fc.constant({ pool: 'pool2' }), fc.constant({ uid: '1000', mode: '0700' })),
      id: fc.constantFrom('c1', 'c2', '', undefined),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), async (steps) => {
        for (const s of steps) {
          tally.add('plugin lifecycle step');
          const body = { Name: s.name, ...(s.call === 'Create' && s.opts !== undefined ? { Opts: s.opts } : {}), ...(s.id !== undefined ? { ID: s.id } : {}) };
          const text = JSON.stringify(body);
          const what = `${s.call} ${text.slice(0, 300)}`;
          const a = await checkCase(sb, [s.name, ...Object.values((s.opts ?? {}) as object).filter((v): v is string => typeof v === 'string')], () => unixRequest(sb.f.pluginSocket, 'POST', `/VolumeDriver.${s.call}`, text), 'plugin', what);
          answerOk(a, what);
        }
      }),
      fuzzParams(0.05),
    );
    await assertAlive(sb, pid, ping);
    await checkBatch(sb, tree, logOffset);
  });
});
