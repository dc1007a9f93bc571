// A node checks that its path to a shared volume's data leads to the directory the last restore made (data-id.ts): it looks again while its view is stale, refuses when it stays stale, and lets volumes without a note through.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureFreshData, inoOf, parseDataId, writeDataId, DATA_ID, type DataIdFs } from '../../src/pools/data-id.js';
import { FerryError } from '../../src/util/errors.js';

/**
 * A share as one node sees it: `views` are the inodes its cache gives for the data, one after another (each listing
 * of the volume's directory after the first renews it); `dirs` the same for the volume's directory (renewed by a
 * listing of the pool's directory of volumes).
 */
function share(note: string | undefined, views: string[], dirs: string[] = ['7']) {
  const calls: string[] = [];
  let i = 0;
  let j = 0;
  const fs: DataIdFs = {
    readText: async (p) => (calls.push(`read ${p}`), note),
    ino: async (p) => (calls.push(`ino ${p}`), p.endsWith('/data') ? views[Math.min(i, views.length - 1)]! : dirs[Math.min(j, dirs.length - 1)]!),
    readdir: async (p) => {
      calls.push(`list ${p}`);
      if (p === '/share/volumes') j++;
      else if (calls.filter((c) => c.startsWith('list /share/volumes/')).length > 1) i++;
      return [];
    },
  };
  return { fs, calls };
}
const db = { volume: 'db', live: '/share/volumes' };
const noteOf = (ino: string) => JSON.stringify({ ino, node: 'nodeA', at: '2026-12-06T10:00:00.000Z' });

describe('data-id: a shared volume restored on another node', () => {
  it('lists the volume directory before it looks, and passes at once when the inode numbers agree', async () => {
    const { fs, calls } = share(noteOf('18446744073709551615'), ['18446744073709551615']);
    await ensureFreshData(fs, db, 1000);
    assert.equal(calls[0], 'list /share/volumes/db');
    assert.deepEqual(calls.slice(1).sort(), ['ino /share/volumes/db/data', `read /share/volumes/db/${DATA_ID}`]);
  });

  it('looks again while the view is stale, until it leads to the restored data', async () => {
    const { fs, calls } = share(noteOf('2'), ['1', '1', '2']);
    await ensureFreshData(fs, db, 5000);
    assert.equal(calls.filter((c) => c.startsWith('ino')).length, 3);
    assert.ok(!calls.includes('list /share/volumes'), 'the directory of volumes is listed only while the volume directory is stale');
  });

  it('refuses, naming both inodes, the node that restored and what to do, when the view stays stale', async () => {
    const { fs } = share(noteOf('2'), ['1']);
    const t0 = Date.now();
    await assert.rejects(ensureFreshData(fs, db, 600), (err: unknown) => {
      assert.ok(err instanceof FerryError && err.code === 'unavailable', String(err));
      assert.match(err.message, /volume db: this node still sees the data it had before a restore on nodeA/);
      assert.match(err.message, /inode 1 here, the restore made inode 2/);
      assert.match(err.message, /try again, and give the share the cache settings of docs\/shared-pools\.md \(GlusterFS: three volume options/);
      return true;
    });
    assert.ok(Date.now() - t0 >= 600, 'it waited for the view to catch up first');
  });

  it("lists the pool's directory of volumes while the volume's directory is an earlier volume's, and refuses when it stays so", async () => {
    const renewed = share(undefined, ['1'], ['5', '5', '7']);
    await ensureFreshData(renewed.fs, { ...db, dirIno: '7' }, 5000);
    assert.equal(renewed.calls.filter((c) => c === 'list /share/volumes').length, 2);
    const stale = share(noteOf('1'), ['1'], ['5']);
    await assert.rejects(ensureFreshData(stale.fs, { ...db, dirIno: '7' }, 300), (err: unknown) => {
      assert.ok(err instanceof FerryError && err.code === 'unavailable', String(err));
      assert.match(err.message, /volume db: this node's path \/share\/volumes\/db still leads to an earlier volume of that name \(inode 5 here, this volume's directory is inode 7/);
      return true;
    });
  });

  it('checks nothing for a volume without a note, or with a note it cannot read', async () => {
    for (const note of [undefined, '', '{"ino": 12}', '{"ino": "-1"}', 'not json']) {
      const { fs } = share(note, ['1']);
      await ensureFreshData(fs, db, 0);
      assert.equal(parseDataId(note), undefined);
    }
  });

  it('writeDataId notes the data directory inode as an unsigned decimal, written whole', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-dataid-'));
    try {
      await mkdir(join(root, 'data.new'));
      await rename(join(root, 'data.new'), join(root, 'data'));
      await writeDataId(root, join(root, 'data'), 'nodeA', Date.parse('2026-12-06T10:00:00Z'));
      const id = parseDataId(await readFile(join(root, DATA_ID), 'utf8'));
      assert.deepEqual(id, { ino: await inoOf(join(root, 'data')), node: 'nodeA', at: '2026-12-06T10:00:00.000Z' });
      assert.match(id!.ino, /^\d+$/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
