import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, renameSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startFerryd } from '../helpers/ferryd.js';

/**
 * ferryd removes a volume in three steps (trash record, move the data, drop the volume record) and
 * undeletes in three. A crash can stop it between any two; these tests leave the files in each of those
 * states, restart ferryd and check that the volume is whole, in exactly one place, with its data.
 */
describe('recovery after a crash in the middle of remove or undelete', () => {
  it('finishes or rolls back each interrupted step, and adopts orphan directories', async () => {
    const f = await startFerryd();
    try {
      for (const v of ['r-before-move', 'r-after-move', 'u-before-move', 'u-after-move']) {
        assert.equal((await f.cli('volume', 'create', v)).code, 0);
        writeFileSync(join(f.dataDir, 'volumes', v, 'data', 'file'), v);
      }
      // Real removals, to get genuine trash records for the undelete cases.
      for (const v of ['u-before-move', 'u-after-move']) assert.equal((await f.cli('volume', 'rm', v)).code, 0);
      await f.stop();

      const cat = (kind: string, key: string) => join(f.dataDir, 'catalog', kind, `${key}.json`);
      const trashRecord = (v: string) => ({ id: `${v}@1790000000000`, removedAt: '2026-09-21T00:00:00.000Z', expiresAt: '2099-01-01T00:00:00.000Z', volume: JSON.parse(readFileSync(cat('volumes', v), 'utf8')) });
      // removal stopped after writing the trash record
      const t1 = trashRecord('r-before-move');
      writeFileSync(cat('trash', t1.id), JSON.stringify(t1));
      // removal stopped after moving the data
      const t2 = trashRecord('r-after-move');
      writeFileSync(cat('trash', t2.id), JSON.stringify(t2));
      renameSync(join(f.dataDir, 'volumes', 'r-after-move'), join(f.dataDir, 'trash', t2.id));
      // undelete stopped after writing the volume record
      const trashIds: Record<string, string> = {};
      for (const file of readdirSync(join(f.dataDir, 'catalog', 'trash'))) trashIds[file.replace(/@\d+\.json$/, '')] = file.slice(0, -'.json'.length);
      for (const v of ['u-before-move', 'u-after-move']) {
        const t = JSON.parse(readFileSync(cat('trash', trashIds[v]!), 'utf8'));
        writeFileSync(cat('volumes', v), JSON.stringify(t.volume));
      }
      // undelete stopped after moving the data back
      renameSync(join(f.dataDir, 'trash', trashIds['u-after-move']!), join(f.dataDir, 'volumes', 'u-after-move'));
      // a create stopped before its record was written: a directory and no record
      mkdirSync(join(f.dataDir, 'volumes', 'orphan', 'data'), { recursive: true });
      writeFileSync(join(f.dataDir, 'volumes', 'orphan', 'data', 'file'), 'orphan');

      await f.start();
      const live = (JSON.parse((await f.cli('volume', 'ls', '--json')).stdout) as Array<{ name: string }>).map((v) => v.name).sort();
      const trash = (JSON.parse((await f.cli('trash', 'ls', '--json')).stdout) as Array<{ name: string }>).map((t) => t.name).sort();
      assert.deepEqual(live, ['orphan', 'r-before-move', 'u-after-move']);
      assert.deepEqual(trash, ['r-after-move', 'u-before-move']);
      for (const v of live) assert.equal(readFileSync(join(f.dataDir, 'volumes', v, 'data', 'file'), 'utf8'), v);
      for (const v of trash) assert.equal((await f.cli('volume', 'undelete', v)).code, 0, v);
      for (const v of trash) assert.equal(readFileSync(join(f.dataDir, 'volumes', v, 'data', 'file'), 'utf8'), v);
      assert.match(JSON.stringify(JSON.parse((await f.cli('volume', 'inspect', 'orphan', '--json')).stdout).labels), /ferry.recovered/);
      assert.ok(!existsSync(join(f.dataDir, 'trash', t1.id)));
    } finally {
      await f.destroy();
    }
  });
});
