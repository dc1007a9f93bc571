// A node checks that its path to a shared volume's data leads to the directory the last restore made (data-id.ts): it looks again while its view is stale, refuses when it stays stale, and lets volumes without a note through.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureFreshData, inoOf, parseDataId, writeDataId, DATA_ID, type DataIdFs } from '../../src/pools/data-id.js';
import { FerryError } from '../../src/util/errors.js';

/** A share as one node sees it: `view` is the inode its cache gives for the data; each listing may renew it. */
function share(note: string | undefined, views: string[]) {
  const calls: string[] = [];
  let i = 0;
  const fs: DataIdFs = {
    readText: async (p) => (calls.push(`read ${p}`), note),
    ino: async (p) => (calls.push(`ino ${p}`), views[Math.min(i, views.length - 1)]!),
    readdir: async (p) => {
      calls.push(`list ${p}`);
      if (calls.filter((c) => c.startsWith('list')).length > 1) i++; // a listing after the first renews the view
      return [];
    },
  };
  return { fs, calls };
}
const noteOf = (ino: string) => JSON.stringify({ ino, node: 'nodeA', at: '2026-12-06T10:00:00.000Z' });

describe('data-id: a shared volume restored on another node', () => {
  it('lists the volume directory before it looks, and passes at once when the inode numbers agree', async () => {
    const { fs, calls } = share(noteOf('18446744073709551615'), ['18446744073709551615']);
    await ensureFreshData(fs, 'db', '/share/volumes/db', '/share/volumes/db/data', 1000);
    assert.equal(calls[0], 'list /share/volumes/db');
    assert.deepEqual(calls.slice(1).sort(), ['ino /share/volumes/db/data', `read /share/volumes/db/${DATA_ID}`]);
  });

  it('looks again while the view is stale, until it leads to the restored data', async () => {
    const { fs, calls } = share(noteOf('2'), ['1', '1', '2']);
    await ensureFreshData(fs, 'db', '/r', '/r/data', 5000);
    assert.equal(calls.filter((c) => c.startsWith('ino')).length, 3);
  });

  it('refuses, naming both inodes, the node that restored and what to do, when the view stays stale', async () => {
    const { fs } = share(noteOf('2'), ['1']);
    const t0 = Date.now();
    await assert.rejects(ensureFreshData(fs, 'db', '/r', '/r/data', 600), (err: unknown) => {
      assert.ok(err instanceof FerryError && err.code === 'unavailable', String(err));
      assert.match(err.message, /volume db: this node still sees the data it had before a restore on nodeA/);
      assert.match(err.message, /inode 1 here, the restore made inode 2/);
      assert.match(err.message, /try again, and mount the share with a short attribute cache/);
      return true;
    });
    assert.ok(Date.now() - t0 >= 600, 'it waited for the view to catch up first');
  });

  it('checks nothing for a volume without a note, or with a note it cannot read', async () => {
    for (const note of [undefined, '', '{"ino": 12}', '{"ino": "-1"}', 'not json']) {
      const { fs } = share(note, ['1']);
      await ensureFreshData(fs, 'db', '/r', '/r/data', 0);
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
