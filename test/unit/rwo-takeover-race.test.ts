// Two nodes taking over a dead node's rwo volume at once, one of them reading through a client cache that still
// shows the dead node's lock (GlusterFS's defaults, for about a second): one node ends up holding it, never both.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SharedStore, type NodeBeat } from '../../src/cluster/shared-store.js';
import { RwoLocks } from '../../src/cluster/rwo-locks.js';
import type { ShareFs } from '../../src/pools/share-fs.js';
import { directShareFs } from '../../src/pools/share-fs-direct.js';

const rec = { name: 'v', createdAt: '2026-12-07T00:00:00.000Z' } as never;

describe('an rwo takeover raced by two nodes, one of them reading a cached lock', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'ferry-rwo-race-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  /** A node's locks over the store at `dir` through `fs`; node A is dead, every other node alive. */
  const node = async (name: string, fs: ShareFs, settleMs: number) => {
    const store = new SharedStore(dir, undefined, fs);
    await store.init();
    const view = Object.assign(Object.create(store) as SharedStore, {
      beatsFor: async (nodes: Iterable<string>) => new Map([...nodes].map((n): [string, NodeBeat] => [n, { node: n, lastSeen: new Date().toISOString() } as NodeBeat])),
    });
    const ctx = { node: name, now: Date.now, log: pino({ level: 'silent' }), nodeTimeoutMs: 1000, store: async () => view, isAlive: (b: NodeBeat | undefined) => b?.node !== 'A' };
    return { store, locks: new RwoLocks(ctx, async () => undefined, settleMs) };
  };

  it('the node whose lock was broken by the stale view sees it after the settle and backs off; the other holds the volume', async () => {
    const a = await node('A', directShareFs, 0);
    await a.locks.acquire('pool', rec);
    const lockPath = join(dir, 'locks', 'v.json');
    const aText = await directShareFs.readText(lockPath);
    // C's client: for 200 ms the lock's name, and whatever C renames it to, still read as A's lock (the kernel's
    // cached name moves with the rename, and the content comes from the client's cache)
    let staleUntil = 0;
    const aliases = new Set([lockPath]);
    const staleFs: ShareFs = {
      ...directShareFs,
      readText: async (p) => (Date.now() < staleUntil && aliases.has(p) ? aText : directShareFs.readText(p)),
      rename: async (from, to) => {
        await directShareFs.rename(from, to);
        if (Date.now() < staleUntil && aliases.has(from)) aliases.add(to);
      },
    };
    const b = await node('B', directShareFs, 500);
    const c = await node('C', staleFs, 500);
    const byB = b.locks.acquire('pool', rec);
    await new Promise((r) => setTimeout(r, 50)); // B has broken A's lock and taken its own
    staleUntil = Date.now() + 200;
    const byC = c.locks.acquire('pool', rec);
    const [rb, rc] = await Promise.allSettled([byB, byC]);
    const holder = (await b.store.readLock('v'))?.node;
    assert.equal(holder, 'C', 'C took it (its stale view broke B\'s lock)');
    assert.equal(rc.status, 'fulfilled', 'C holds it');
    assert.equal(rb.status, 'rejected', 'B does not go on with a lock it lost');
    assert.match(String((rb as PromiseRejectedResult).reason), /node C holds it/);
    assert.equal(b.locks.held.size, 0);
    assert.equal(await c.locks.stillHeld('pool', 'v'), true);
  });

  it('a release the share did not take (ENOTCONN) is given back at the next heartbeat, not left to bar every other node', async () => {
    let down = true;
    const flaky: ShareFs = { ...directShareFs, rename: async (from, to) => (down ? Promise.reject(Object.assign(new Error('ENOTCONN: transport endpoint is not connected'), { code: 'ENOTCONN' })) : directShareFs.rename(from, to)) };
    const c = await node('C', directShareFs, 0);
    await c.locks.release('pool', 'v'); // (the previous test left it to C)
    const d = await node('D', flaky, 0);
    const e = await node('E', directShareFs, 0);
    await d.locks.acquire('pool', { name: 'w', createdAt: 't' } as never);
    await assert.rejects(d.locks.release('pool', 'w'), /ENOTCONN/);
    assert.equal((await d.store.readLock('w'))?.node, 'D', 'the lock is still there');
    await assert.rejects(e.locks.acquire('pool', { name: 'w', createdAt: 't' } as never), /node D holds it/);
    await assert.rejects(d.locks.retryRelease('pool', 'w')); // the share still down: kept for the next one
    assert.deepEqual(d.locks.pendingReleases(), [{ pool: 'pool', volume: 'w' }]);
    down = false;
    await d.locks.retryRelease('pool', 'w');
    assert.deepEqual(d.locks.pendingReleases(), []);
    assert.equal(await d.store.readLock('w'), undefined, 'given back');
    await e.locks.acquire('pool', { name: 'w', createdAt: 't' } as never);
    // a lock taken again here before the retry is kept
    await e.locks.release('pool', 'w');
    down = true;
    await d.locks.acquire('pool', { name: 'w', createdAt: 't' } as never);
    await assert.rejects(d.locks.release('pool', 'w'));
    await d.locks.acquire('pool', { name: 'w', createdAt: 't' } as never); // mounted again (its own lock, from before)
    down = false;
    await d.locks.retryRelease('pool', 'w');
    assert.equal((await d.store.readLock('w'))?.node, 'D', 'held again, so kept');
    assert.deepEqual(d.locks.pendingReleases(), []);
    assert.equal(await d.locks.stillHeld('pool', 'w'), true);
  });
});
