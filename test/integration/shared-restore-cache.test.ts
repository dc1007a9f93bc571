// A shared volume restored on one node and used at once on another whose GlusterFS client still caches the old data directory: the other node gets the restored data, never the old.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { glusterPrerequisites } from '../helpers/gluster.js';
import { startLocalGluster, type LocalGluster } from '../helpers/gluster-local.js';
import { pluginOk, startShareFerryd } from '../helpers/shared-node.js';
import { DATA_ID, inoOf, parseDataId } from '../../src/pools/data-id.js';

/**
 * Found by the soak (seed 176566005): a read on node C 0.5 s after a restore on node B missed files. A restore in
 * a shared pool swaps the data directory by renames; each node's GlusterFS FUSE client keeps the name `data`
 * cached for up to its 1 s entry timeout, so node B's path led to the OLD directory, which A was deleting (checked
 * without ferryd: 10 of 10 looks right after such a rename reached the old inode; a listing of the parent renewed
 * the name). Here each node has its own FUSE client of one GlusterFS volume; B reads the volume (its client caches
 * the name), A restores it, and B at once mounts it (and snapshots it): B must see the restored bytes, every round.
 */
const skip = skipUnless([...(isRoot() ? [] : ['root (uid 0)']), ...glusterPrerequisites()], 'GlusterFS');
const ROUNDS = 6;

describe('shared pool on GlusterFS: a restore on one node, used at once on another', { skip }, () => {
  let base: string;
  let g: LocalGluster;
  const mnts: string[] = [];
  let a: Ferryd;
  let b: Ferryd;
  const cli = async (f: Ferryd, ...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /**
   * Every file of the volume as a container on `f`'s host sees it: name -> content. Like Docker, bind-mount the
   * Mountpoint ferryd answers and read through the bind mount (a path looked up once, then held: reading through
   * the path itself would look the name up again and heal a stale one).
   */
  const read = async (f: Ferryd, volume: string, id: string) => {
    const p = (await pluginOk(f, 'Mount', { Name: volume, ID: id })).Mountpoint;
    const into = join(base, `bind-${id}`);
    await mkdir(into);
    try {
      const r = await run('mount', ['--bind', p, into]);
      assert.equal(r.code, 0, `mount --bind ${p}: ${r.stderr}`);
      try {
        const out = new Map<string, string>();
        for (const n of (await readdir(into)).sort()) out.set(n, await readFile(join(into, n), 'utf8'));
        return out;
      } finally {
        await run('umount', [into]);
      }
    } finally {
      await rm(into, { recursive: true, force: true });
      await pluginOk(f, 'Unmount', { Name: volume, ID: id });
    }
  };
  const write = async (f: Ferryd, volume: string, files: Record<string, string>) => {
    const p = (await pluginOk(f, 'Mount', { Name: volume, ID: 'w' })).Mountpoint;
    for (const [n, text] of Object.entries(files)) await writeFile(join(p, n), text);
    await pluginOk(f, 'Unmount', { Name: volume, ID: 'w' });
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-restorecache-'));
    g = await startLocalGluster();
    for (const n of ['a', 'b']) {
      const mp = join(base, `mnt-${n}`);
      await mkdir(mp);
      await g.mount(mp);
      mnts.push(mp);
    }
    await writeFile(join(mnts[0]!, '.ferry-pool'), 'test share\n');
    a = await startShareFerryd(base, mnts[0]!, 'nodeA', { heartbeatMs: 500, nodeTimeoutMs: 5000 });
    b = await startShareFerryd(base, mnts[1]!, 'nodeB', { heartbeatMs: 500, nodeTimeoutMs: 5000 });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    for (const mp of mnts) await g?.unmount(mp).catch(() => undefined);
    await g?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it(`B mounts and snapshots the restored data, not the old, right after A's restore (${ROUNDS} rounds)`, async () => {
    const golden: Record<string, string> = {};
    for (let i = 0; i < 20; i++) golden[`f${i}`] = `the snapshot, file ${i}\n`.repeat(50);
    await pluginOk(a, 'Create', { Name: 'db', Opts: {} });
    await write(a, 'db', golden);
    await cli(a, 'snapshot', 'create', 'db', '--name', 'base');
    const want = new Map(Object.entries(golden).sort(([x], [y]) => (x < y ? -1 : 1)));
    for (let round = 0; round < ROUNDS; round++) {
      const later: Record<string, string> = {};
      for (let i = 0; i < 20; i += 2) later[`f${i}`] = `written after the snapshot, round ${round}\n`;
      later[`new${round}`] = 'not in the snapshot\n';
      await write(a, 'db', later);
      // B reads what is there now: its FUSE client caches the name of the data directory
      const before = await read(b, 'db', `before${round}`);
      assert.equal(before.get('f0'), later.f0, 'B sees the writes made on A before the restore');
      // while A restores, something on B keeps looking at the volume's data (a usage pass, a container's lookups):
      // B's client then holds the name `data` fresh from a lookup less than a second old when the restore ends
      const warm = setInterval(() => void stat(join(mnts[1]!, 'volumes', 'db', 'data')).catch(() => undefined), 50);
      try {
        await cli(a, 'snapshot', 'restore', 'db', 'base');
      } finally {
        clearInterval(warm);
      }
      // what B checks against: the restoring node noted the new data directory's inode number on the share
      const note = parseDataId(await readFile(join(mnts[0]!, 'volumes', 'db', DATA_ID), 'utf8').catch(() => undefined));
      assert.equal(note?.ino, await inoOf(join(mnts[0]!, 'volumes', 'db', 'data')), `round ${round}: the note names the restored data directory`);
      if (round % 2 === 0) {
        assert.deepEqual(await read(b, 'db', `after${round}`), want, `round ${round}: B read the volume right after A's restore`);
      } else {
        await cli(b, 'snapshot', 'create', 'db', '--name', `b${round}`);
        await cli(a, 'snapshot', 'restore', 'db', `b${round}`);
        assert.deepEqual(await read(a, 'db', `check${round}`), want, `round ${round}: B's snapshot taken right after A's restore holds the restored data`);
      }
    }
  });
});
