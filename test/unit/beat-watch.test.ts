// Liveness from listings of the heartbeat directory (src/cluster/beat-watch.ts): a beating node is never called
// dead and its heartbeat is not read while it beats; a node that stops beating is called dead after the timeout.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BeatWatch, type BeatSource } from '../../src/cluster/beat-watch.js';
import type { NodeBeat } from '../../src/cluster/shared-store.js';

const TIMEOUT = 30_000;
const INTERVAL = 5_000;

/** Heartbeat files as a share would hold them: each beat a new file (another signature), stamped with the writer's clock. */
class FakeShare implements BeatSource {
  files = new Map<string, { sig: string; beat: NodeBeat }>();
  reads = 0;
  private n = 0;
  beat(node: string, at: number): void {
    this.files.set(node, { sig: `ino${++this.n}`, beat: { node, pid: 1, version: 't', startedAt: new Date(0).toISOString(), lastSeen: new Date(at).toISOString(), intervalMs: INTERVAL } });
  }
  async beatSigs(): Promise<Array<[string, string]>> {
    return [...this.files].map(([node, f]) => [`${node}.json`, f.sig]);
  }
  async beatOf(node: string): Promise<NodeBeat | undefined> {
    this.reads++;
    return this.files.get(node)?.beat;
  }
}

describe('BeatWatch', () => {
  it('keeps beating nodes alive without reading their heartbeats, and calls a silent node dead after the timeout', async () => {
    let now = 1_000_000;
    const share = new FakeShare();
    const w = new BeatWatch(share, TIMEOUT, () => now);
    share.beat('a', now);
    share.beat('b', now);
    assert.deepEqual([...(await w.alive())].sort(), ['a', 'b']);
    assert.equal(share.reads, 2, 'each heartbeat read once when first seen');
    // b stops beating at t0; a beats every interval; the watch looks every interval (the heartbeat tick)
    const stopped = now;
    for (let t = 0; t < 20; t++) {
      now += INTERVAL;
      share.beat('a', now);
      const alive = await w.alive();
      assert.ok(alive.has('a'), `a beats: never dead (step ${t})`);
      assert.equal(alive.has('b'), now - stopped <= TIMEOUT, `b silent for ${now - stopped} ms`);
    }
    assert.equal(share.reads - 2, 20 - TIMEOUT / INTERVAL, 'only the silent node is read, once per look after its timeout');
  });

  it('never calls a node dead that reading its heartbeat would call alive, even when the listing does not show its new beat', async () => {
    let now = 2_000_000;
    const share = new FakeShare();
    const w = new BeatWatch(share, TIMEOUT, () => now);
    share.beat('a', now);
    await w.alive();
    // a stale attribute cache: the listing keeps showing the old signature while the file's content is new
    const sig = share.files.get('a')!.sig;
    for (let t = 0; t < 12; t++) {
      now += INTERVAL;
      share.beat('a', now);
      share.files.get('a')!.sig = sig;
      assert.ok((await w.alive()).has('a'), `step ${t}`);
    }
  });

  it('looks at most once per maxAge, and a node whose file appears is read and judged by its stamp', async () => {
    let now = 3_000_000;
    const share = new FakeShare();
    const w = new BeatWatch(share, TIMEOUT, () => now);
    share.beat('old', now - 2 * TIMEOUT); // a heartbeat left by a node gone long ago
    assert.deepEqual([...(await w.alive())], []);
    share.beat('new', now);
    assert.deepEqual([...(await w.alive(INTERVAL))], [], 'the last look is young enough: no new look');
    now += 1;
    assert.deepEqual([...(await w.alive(0))], ['new']);
  });
});
