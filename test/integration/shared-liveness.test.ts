// Liveness of other nodes from listings of the heartbeat directory (src/cluster/beat-watch.ts), with real ferryds:
// a beating node's attachment never expires, a crashed node's does after nodeTimeout, and comes back with it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare } from '../helpers/shared-node.js';

const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');
const HEARTBEAT_MS = 200;
const TIMEOUT_MS = 1500;

describe('shared pool: liveness from the heartbeat directory', { skip }, () => {
  let base: string;
  let mnt: string;
  let a: Ferryd;
  let b: Ferryd;
  const startNode = async (node: string) => {
    const dir = join(base, node);
    await mkdir(dir, { recursive: true });
    const yaml = [`node: ${node}`, `heartbeatInterval: ${HEARTBEAT_MS}ms`, `nodeTimeout: ${TIMEOUT_MS}ms`, 'defaultPool: nas', 'pools:', '  nas:', `    path: ${mnt}`, '    shared: true'].join('\n');
    await writeFile(join(dir, 'ferry.yaml'), yaml);
    return startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node] });
  };
  const ok = async (f: Ferryd, method: string, body: Record<string, unknown>) => {
    const r = await f.plugin(method, body);
    assert.equal(r.json?.Err, '', `${method} ${JSON.stringify(body)}: ${r.text}`);
    return r.json;
  };
  /** What node A's API says of B's attachment of `v1`: true (alive), false (expired), undefined (none). */
  const attachedOnA = async (): Promise<boolean | undefined> => {
    const r = await unixRequest(a.apiSocket, 'GET', '/v1/volumes');
    assert.equal(r.status, 200, r.text);
    const v = (r.json.volumes as Array<{ name: string; attachments: Array<{ node: string; alive: boolean }> }>).find((x) => x.name === 'v1');
    return v?.attachments.find((x) => x.node === 'nodeB')?.alive;
  };
  const until = async (what: string, probe: () => Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-shlive-'));
    mnt = await mountBindShare(base);
    a = await startNode('nodeA');
    b = await startNode('nodeB');
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('a volume created on A is listed by B at once (List reads the shared catalog)', async () => {
    await ok(a, 'Create', { Name: 'v1' });
    const names = ((await ok(b, 'List', {}))!.Volumes as Array<{ Name: string }>).map((v) => v.Name);
    assert.ok(names.includes('v1'), `B lists ${names.join(', ')}`);
  });

  it('a volume removed on A is forgotten by B at its next heartbeats (the catalog directory changed), without a List', async () => {
    await ok(a, 'Create', { Name: 'v2' });
    await ok(b, 'Get', { Name: 'v2' }); // B knows it now, and answers Get from its cache
    await ok(a, 'Remove', { Name: 'v2' });
    await until('B to forget v2', async () => Boolean((await b.plugin('Get', { Name: 'v2' })).json?.Err));
    // and a volume made on A meanwhile is learnt by B's heartbeat too: its cache holds it without any call naming it
    await ok(a, 'Create', { Name: 'v3' });
    await until('B to learn v3', async () => {
      const r = await unixRequest(b.apiSocket, 'GET', '/v1/volumes/v3');
      return r.status === 200;
    });
  });

  it('never calls a beating node dead, and calls it dead after it stops beating, alive again when it is back', async () => {
    await ok(b, 'Mount', { Name: 'v1', ID: 'c1' });
    await until('A to see the attachment of B', async () => (await attachedOnA()) === true);
    // B beats: over four node timeouts, every look of A finds B's attachment alive
    const end = Date.now() + 4 * TIMEOUT_MS;
    let looks = 0;
    while (Date.now() < end) {
      assert.equal(await attachedOnA(), true, `look ${looks}: B beats, its attachment must be alive`);
      looks++;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(looks > 10, `${looks} looks`);
    // kill -9: B stops beating; A calls its attachment expired (after nodeTimeout)
    await b.crash();
    await until('A to call the attachment of the crashed B expired', async () => (await attachedOnA()) === false);
    // B comes back (its mount journal holds c1): alive again
    await b.start();
    await until('A to see B alive again', async () => (await attachedOnA()) === true);
    await ok(b, 'Unmount', { Name: 'v1', ID: 'c1' });
  });
});
