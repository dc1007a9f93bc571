import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { link } from 'node:fs/promises';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SharedStore } from '../../src/cluster/shared-store.js';
import type { ShareFs } from '../../src/pools/share-fs.js';
import { directShareFs } from '../../src/pools/share-fs-direct.js';

/**
 * The NFS trap of link(2): the link is made but EEXIST is reported (a retransmitted request whose first
 * reply was lost). Injected with a ShareFs wrapper; a kernel NFS client cannot run here.
 */
const lock = (node: string) => ({ node, volume: 'v', createdAt: 't', since: 't', token: node });

describe('exclusive create by link(2), NFS-safe', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'ferry-nfslink-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  it('a link that was made but reported EEXIST counts as won (link count 2)', async () => {
    const liar: ShareFs = {
      ...directShareFs,
      async link(a, b) {
        await link(a, b);
        throw Object.assign(new Error('EEXIST: file already exists (lost reply)'), { code: 'EEXIST' });
      },
    };
    const s = new SharedStore(join(dir, 'a'), undefined, liar);
    await s.init();
    assert.equal(await s.tryLock(lock('n1')), true);
    assert.equal((await s.readLock('v'))?.node, 'n1');
    assert.deepEqual((await readdir(join(dir, 'a', 'locks'))).filter((e) => e.startsWith('.')), [], 'no private file left');
  });

  it('a real EEXIST (the name is taken, link count 1) loses', async () => {
    const s = new SharedStore(join(dir, 'b'), undefined, directShareFs);
    await s.init();
    assert.equal(await s.tryLock(lock('n1')), true);
    const other = new SharedStore(join(dir, 'b'), undefined, directShareFs);
    assert.equal(await other.tryLock(lock('n2')), false);
    assert.equal((await s.readLock('v'))?.node, 'n1');
    assert.equal(await other.publish({ name: 'x' } as never), true);
    assert.equal(await s.publish({ name: 'x' } as never), false);
  });

  it('another error of link(2) is an error, not a loss', async () => {
    const broken: ShareFs = { ...directShareFs, link: async () => Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) };
    const s = new SharedStore(join(dir, 'c'), undefined, broken);
    await s.init();
    await assert.rejects(s.tryLock(lock('n1')), /EIO/);
  });
});
