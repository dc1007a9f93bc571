// The pools' space over time (GET /v1/capacity): sampled by a real ferryd, kept across a restart, never lost to a bad file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import type { CapacityHistory } from '../../src/wire/types.js';

describe('capacity history: a sample per interval per pool, kept in DATA_DIR/capacity.json', () => {
  let f: Ferryd;
  const history = async (): Promise<CapacityHistory> => {
    const r = await unixRequest(f.apiSocket, 'GET', '/v1/capacity');
    assert.equal(r.status, 200, r.text);
    return JSON.parse(r.text) as CapacityHistory;
  };
  const samplesOf = async (min: number) => {
    for (let i = 0; i < 100; i++) {
      const h = await history();
      if ((h.pools.local?.length ?? 0) >= min) return h;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`fewer than ${min} samples of pool local after 10 s`);
  };

  before(async () => {
    f = await startFerryd({ env: { FERRY_CAPACITY_INTERVAL_MS: '200' } });
  });
  after(async () => {
    await f?.destroy();
  });

  it('samples the pool as statfs sees it, oldest first', async () => {
    const h = await samplesOf(3);
    assert.equal(h.intervalMs, 200);
    const xs = h.pools.local!;
    const fs = await statfs(f.dataDir);
    for (const s of xs) {
      assert.equal(s.totalBytes, fs.blocks * fs.bsize, 'total as statfs says');
      assert.ok(s.usedBytes > 0 && s.freeBytes > 0 && s.usedBytes + s.freeBytes <= s.totalBytes);
    }
    const times = xs.map((s) => Date.parse(s.at));
    assert.deepEqual([...times].sort((a, b) => a - b), times, 'oldest first');
  });

  it('keeps the samples across a restart, and starts a new history when the file is unreadable', async () => {
    const before = (await history()).pools.local!;
    await f.stop();
    await f.start();
    const after = (await samplesOf(before.length + 1)).pools.local!;
    assert.deepEqual(after.slice(0, before.length), before, 'the samples from before the restart come first, unchanged');

    await f.stop();
    await writeFile(join(f.dataDir, 'capacity.json'), '{"v": 1, "pools": {"local": [{"at": "2026-12-03T'); // cut by a crash
    await f.start();
    const fresh = (await samplesOf(1)).pools.local!;
    assert.ok(fresh.every((s) => Date.parse(s.at) > Date.parse(after.at(-1)!.at)), 'a new history');
    assert.match(await f.logs(), /capacity history unreadable; starting a new one/);
  });
});
