// A create in a shared pool whose publish reports an error after the record landed: the create stands, its data directory with it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare, pluginOk, startShareFerryd } from '../helpers/shared-node.js';

/**
 * Under load the share's deadline can pass after link(2) has put the record in place. The create used to
 * delete the volume's directory then, leaving a record without data on every node: the next Create of the
 * name answered "exists" and every Mount "data missing". Now it reads the record back: its own, the create stands.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');

describe('shared pool: a create whose publish answered late', { skip }, () => {
  let base: string;
  let mnt: string;
  const nodes: Ferryd[] = [];
  const startNode = async (node: string, env?: Record<string, string>) => {
    const f = await startShareFerryd(base, mnt, node, { ...(env ? { env } : {}) });
    nodes.push(f);
    return f;
  };
  const ok = pluginOk;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-createfault-'));
    mnt = await mountBindShare(base);
  });
  after(async () => {
    for (const f of nodes.splice(0)) await f.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('the record landed: the create stands with its data directory, and another node mounts it', async () => {
    const a = await startNode('nodeA', { FERRY_TEST_FAULT: 'create-after-publish' });
    const b = await startNode('nodeB');
    await ok(a, 'Create', { Name: 'late' });
    assert.match(await a.logs(), /publishing a record reported an error, but the record is there/);
    const p = (await ok(a, 'Mount', { Name: 'late', ID: 'a1' })).Mountpoint;
    await writeFile(join(p, 'file'), 'written on A\n');
    await ok(a, 'Unmount', { Name: 'late', ID: 'a1' });
    const q = (await ok(b, 'Mount', { Name: 'late', ID: 'b1' })).Mountpoint;
    assert.equal(await readFile(join(q, 'file'), 'utf8'), 'written on A\n');
    await ok(b, 'Unmount', { Name: 'late', ID: 'b1' });
  });
});
