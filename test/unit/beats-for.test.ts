// A heartbeat missing from one look at a share is no proof of a dead node (SharedStore.beatsFor).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { SharedStore } from '../../src/cluster/shared-store.js';
import type { NodeBeat } from '../../src/cluster/shared-store.js';
import type { ShareFs } from '../../src/pools/share-fs.js';
import { directShareFs } from '../../src/pools/share-fs-direct.js';

const beat = (node: string): NodeBeat => ({ node, lastSeen: new Date().toISOString(), startedAt: new Date().toISOString(), version: 't', pid: 1, intervalMs: 1000 });

describe('heartbeats for a decision: one look is no proof', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'ferry-beats-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  it("finds a node's heartbeat that a listing left out, and one that read as absent for a moment", async () => {
    let absentReads = 1;
    // a client that, as GlusterFS's did while another node replaced its heartbeat, leaves hostA out of a listing
    // and answers ENOENT once for hostB's file
    const glitchy: ShareFs = {
      ...directShareFs,
      async readdir(d) {
        const names = await directShareFs.readdir(d);
        return names.filter((n) => n !== 'hostA.json');
      },
      async readText(p) {
        if (basename(p) === 'hostB.json' && absentReads-- > 0) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: 'ENOENT' });
        return directShareFs.readText(p);
      },
    };
    const writer = new SharedStore(join(dir, 'pool'));
    await writer.init();
    await writer.beat(beat('hostA'));
    await writer.beat(beat('hostB'));
    const s = new SharedStore(join(dir, 'pool'), undefined, glitchy);
    const listed = await s.nodes();
    assert.deepEqual(listed.map((b) => b.node), [], 'the listing alone would have taken both for dead');
    const found = await s.beatsFor(['hostA', 'hostB', 'hostC'], listed);
    assert.deepEqual([...found.keys()].sort(), ['hostA', 'hostB']);
    assert.equal(found.get('hostC'), undefined, 'a node without a heartbeat file has none');
  });
});
