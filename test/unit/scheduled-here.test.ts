// Which node runs a shared volume's schedules: one node only, and none while a node cannot tell.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Attachments } from '../../src/volumes/attachments.js';
import type { AttachmentStatus, Cluster } from '../../src/cluster/cluster.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import { KeyedLock } from '../../src/util/keyed-lock.js';

/** A cluster as one node sees it: the attachments of pool `nas` (or a share that does not answer), and the live nodes. */
function nodeView(node: string, view: { attachments: AttachmentStatus[] | Error; alive: string[] }): Attachments {
  const cluster = {
    active: true,
    sharedPools: () => ['nas'],
    attachments: async () => {
      if (view.attachments instanceof Error) throw view.attachments;
      return view.attachments;
    },
    liveNodes: async () => view.alive,
  } as unknown as Cluster;
  return new Attachments({
    catalog: { volumes: new Map() } as unknown as Catalog,
    log: pino({ level: 'silent' }),
    node,
    now: () => Date.now(),
    lock: new KeyedLock(),
    cluster,
    isShared: (pool) => pool === 'nas',
    syncAll: async () => undefined,
    containersUsing: async () => undefined,
  });
}

const att = (node: string, alive = true): AttachmentStatus => ({ node, volume: 'db', createdAt: 't', access: 'rwx', mountIds: ['m'], containers: [], since: 't', updatedAt: 't', pool: 'nas', alive });
const db = { name: 'db', shared: true, pool: 'nas' };
const local = { name: 'mine', shared: false, pool: 'local' };

describe('scheduledHere', () => {
  it('the first live node that has the volume attached runs it; nobody attached: the first live node', async () => {
    const attached = { attachments: [att('nodeB'), att('nodeC')], alive: ['nodeA', 'nodeB', 'nodeC'] };
    assert.deepEqual(await Promise.all(['nodeA', 'nodeB', 'nodeC'].map(async (n) => (await nodeView(n, attached).scheduledHere())(db))), [false, true, false]);
    const deadHolder = { attachments: [att('nodeB', false)], alive: ['nodeA', 'nodeB'] };
    assert.equal((await nodeView('nodeA', deadHolder).scheduledHere())(db), true, "a dead node's attachment does not count");
    const nobody = { attachments: [], alive: ['nodeA', 'nodeB'] };
    assert.deepEqual([(await nodeView('nodeA', nobody).scheduledHere())(db), (await nodeView('nodeB', nobody).scheduledHere())(db)], [true, false]);
  });

  it('a node that cannot read the attachments does not take the volume for unattached: it skips it this pass', async () => {
    // B has it attached and runs it; A's read of the share fails: before, A took it as attached nowhere and, first by name, ran it too
    const here = await nodeView('nodeA', { attachments: new Error('ENOTCONN'), alive: ['nodeA', 'nodeB'] }).scheduledHere();
    assert.equal(here(db), false);
    assert.equal(here(local), true, 'local volumes are not affected');
  });

  it('a node that sees no live node, not even itself, runs nothing shared', async () => {
    const here = await nodeView('nodeA', { attachments: [], alive: [] }).scheduledHere();
    assert.equal(here(db), false);
    assert.equal(here(local), true);
  });
});
