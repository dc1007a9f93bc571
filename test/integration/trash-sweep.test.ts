/**
 * ferryd's own trash sweep (no call asks for it): with --trash-retention 2s a removed volume is purged by
 * the daemon's timer a few seconds later, its data gone from disk, and a restart does not bring it back.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';

describe('trash sweep of a running ferryd', () => {
  let f: Ferryd;
  before(async () => {
    f = await startFerryd({ extraArgs: ['--trash-retention', '2s'] });
  });
  after(async () => {
    await f?.destroy();
  });

  it('purges an expired trash entry by itself, and it stays purged after a restart', async () => {
    assert.equal((await f.cli('volume', 'create', 'gone-soon')).code, 0);
    await writeFile(join(f.dataDir, 'volumes', 'gone-soon', 'data', 'file'), 'x'.repeat(4096));
    const rm = await f.cli('volume', 'rm', 'gone-soon');
    assert.equal(rm.code, 0, rm.stderr);
    const listed = async () => JSON.parse((await f.cli('--json', 'trash', 'ls')).stdout) as unknown[];
    assert.equal((await listed()).length, 1, 'in the trash at first');
    const trashDir = join(f.dataDir, 'trash');
    assert.equal((await readdir(trashDir)).filter((e) => !e.startsWith('.')).length, 1, 'its data is in the pool\'s trash at first');
    const deadline = Date.now() + 20_000;
    while ((await listed()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    assert.equal((await listed()).length, 0, 'purged by the sweep within 20 s (retention 2 s, a sweep every 1 s)');
    const left = existsSync(trashDir) ? await readdir(trashDir) : [];
    assert.deepEqual(left.filter((e) => !e.startsWith('.')), [], 'its data is gone from disk');
    assert.match(await f.logs(), /trash entry expired and purged/);
    await f.stop();
    await f.start();
    assert.equal((await listed()).length, 0, 'not back after a restart');
  });
});
