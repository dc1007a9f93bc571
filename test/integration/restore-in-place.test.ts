import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { makeLoopFs, loopFsPrerequisites, type FsKind, type LoopFs } from '../helpers/loopfs.js';
import { populate, fingerprint, fileInodes } from '../helpers/tree.js';
import { skipUnless } from '../helpers/prereq.js';

/**
 * Restores on pools without filesystem snapshots happen in place (pools/trees/restore.ts): what is unchanged since
 * the snapshot stays, what differs is copied from the snapshot into a stage, a journal is written, and the plan is
 * carried out. These tests check the result byte for byte (modes, owners, times, symlinks, hard links, empty
 * directories, type changes), that it never shares an inode with a snapshot, that only what changed was copied,
 * and that kill -9 at each step leaves the old data or the restored data, never a mix.
 */

/** Change everything a container could, including what a size+mtime check would miss. */
function mess(root: string): void {
  // same size, same mtime, new content: only the ctime tells
  const p = join(root, 'a/file-4.bin');
  const st = lstatSync(p);
  const buf = readFileSync(p);
  buf[0] = buf[0]! ^ 0xff;
  writeFileSync(p, buf);
  utimesSync(p, st.atime, st.mtime);
  writeFileSync(join(root, 'a/file-1.bin'), 'overwritten');
  chmodSync(join(root, 'file-0.bin'), 0o777);
  chownSync(join(root, 'file-3.bin'), 4242, 4242);
  rmSync(join(root, 'a/b/c'), { recursive: true }); // a deep tree gone
  rmSync(join(root, 'empty'), { recursive: true }); // an empty dir gone
  writeFileSync(join(root, 'new-file'), 'new');
  mkdirSync(join(root, 'new-dir/deeper'), { recursive: true });
  writeFileSync(join(root, 'new-dir/deeper/x'), 'x');
  // type changes: file -> dir, dir -> file, symlink -> file, file -> symlink, fifo -> dir
  rmSync(join(root, 'file-6.bin'));
  mkdirSync(join(root, 'file-6.bin'));
  writeFileSync(join(root, 'file-6.bin/inside'), 'a file where a file was');
  rmSync(join(root, 'empty-too'), { recursive: true });
  writeFileSync(join(root, 'empty-too'), 'a file where a tree was');
  unlinkSync(join(root, 'link-to-file'));
  writeFileSync(join(root, 'link-to-file'), 'not a link any more');
  unlinkSync(join(root, 'file-9.bin'));
  symlinkSync('somewhere', join(root, 'file-9.bin'));
  unlinkSync(join(root, 'a/fifo'));
  mkdirSync(join(root, 'a/fifo'));
  // hard links: one group written through, a new link to an unchanged file
  appendFileSync(join(root, 'hard-1'), ' and more');
  linkSync(join(root, 'file-12.bin'), join(root, 'a/extra-link'));
  // directory metadata
  chmodSync(join(root, 'a/b'), 0o700);
  utimesSync(join(root, 'a'), 1_400_000_000, 1_400_000_000);
}

/** The fingerprint without the volume's root entry's mtime noise: '.' is compared as well (it is restored). */
const same = (a: object, b: object) => JSON.stringify(a) === JSON.stringify(b);

/** device:inode of a path. */
const inode = (p: string) => {
  const st = lstatSync(p, { bigint: true });
  return `${st.dev}:${st.ino}`;
};

const kinds: FsKind[] = ['ext4', 'xfs'];
for (const kind of kinds) {
  const skip = skipUnless(loopFsPrerequisites(kind), `restores in place on ${kind}`);

  describe(`restores in place on a ${kind} pool`, { skip }, () => {
    let fs: LoopFs;
    let f: Ferryd;
    const dir = () => join(fs.mountpoint, 'ferry');
    const data = (v: string) => join(f.dataDir, 'volumes', v, 'data');
    const volDir = (v: string) => join(f.dataDir, 'volumes', v);
    const snapsDir = (v: string) => join(volDir(v), 'snapshots');
    const ok = async (...args: string[]) => {
      const r = await f.cli(...args);
      assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const json = async (...args: string[]) => JSON.parse(await ok('--json', ...args));
    /** The live data shares no inode with any snapshot, and no stage (its empty directories go right after the answer), journal or copy is left. */
    const clean = async (v: string) => {
      const live = fileInodes(data(v));
      for (const ino of fileInodes(snapsDir(v))) assert.ok(!live.has(ino), 'live data shares an inode with a snapshot');
      const left = () => readdirSync(volDir(v)).filter((e) => e !== 'snapshots' && e !== 'refs.json').sort();
      for (const deadline = Date.now() + 5000; left().includes('data.stage') && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(left(), ['data'], 'no stage, journal or copy left');
    };
    /** The last "restored in place" log line of ferryd. */
    const lastInPlace = async () => {
      const lines = (await f.logs()).split('\n').filter((l) => l.includes('restored in place'));
      assert.ok(lines.length, 'the restore was made in place');
      return JSON.parse(lines.at(-1)!) as { kept: number; copied: number; removed: number; renames: number };
    };

    before(async () => {
      fs = await makeLoopFs(kind);
      f = await startFerryd({ dir: dir(), logLevel: 'info' });
    });
    after(async () => {
      await f?.destroy();
      await fs?.destroy();
    });

    it('gives the snapshot back byte for byte, keeping what did not change and copying only what did', async () => {
      await ok('volume', 'create', 'rt');
      populate(data('rt'));
      const golden = fingerprint(data('rt'));
      const untouched = inode(join(data('rt'), 'a/file-7.bin'));
      const s = await json('snapshot', 'create', 'rt', '--name', 'golden');
      mess(data('rt'));
      assert.ok(!same(fingerprint(data('rt')), golden));
      await ok('snapshot', 'restore', 'rt', 'golden');
      assert.deepEqual(fingerprint(data('rt')), golden);
      assert.ok(fingerprint(data('rt'))['sparse.img']!.allocatedMiB! <= 2, 'the sparse file stays sparse');
      assert.equal(inode(join(data('rt'), 'a/file-7.bin')), untouched, 'an unchanged file is kept, not copied');
      await clean('rt');
      const log = await lastInPlace();
      // changed: file-4 (same size and mtime), file-1, file-0, file-3, a/b/c's 67 files, file-6, link-to-file,
      // file-9, a/fifo, hard-1 + a/hard-2, file-12 (its link count changed)
      assert.ok(log.copied >= 10 && log.copied <= 90, `copied ${log.copied}`);
      assert.ok(log.kept > 100, `kept ${log.kept}`);
      // again with nothing changed: only what the first one copied is copied again (new inodes), the result is the same
      await ok('snapshot', 'restore', 'rt', s.id);
      assert.deepEqual(fingerprint(data('rt')), golden);
      await clean('rt');
      // the next snapshot after a restore in place is right too
      writeFileSync(join(data('rt'), 'a/file-7.bin'), 'after the restore');
      const fp2 = fingerprint(data('rt'));
      await ok('snapshot', 'create', 'rt', '--name', 'second');
      mess(data('rt'));
      await ok('snapshot', 'restore', 'rt', 'second');
      assert.deepEqual(fingerprint(data('rt')), fp2);
      await ok('snapshot', 'restore', 'rt', 'golden');
      assert.deepEqual(fingerprint(data('rt')), golden);
      await clean('rt');
    });

    it('a volume whose restore journal is still there (an apply that failed) is not mounted until the restore is finished', async () => {
      await ok('volume', 'create', 'halfway');
      writeFileSync(join(volDir('halfway'), 'restore.json'), '{"kind":"in-place"}');
      const r = await f.plugin('Mount', { Name: 'halfway', ID: 'h1' });
      assert.match(r.json.Err, /volume halfway has an unfinished restore .*restore\.json\): its data may be half restored, so it is not mounted; restart ferryd/);
      unlinkSync(join(volDir('halfway'), 'restore.json'));
      assert.equal((await f.plugin('Mount', { Name: 'halfway', ID: 'h2' })).json.Err, '');
      assert.equal((await f.plugin('Unmount', { Name: 'halfway', ID: 'h2' })).json.Err, '');
      await ok('volume', 'rm', 'halfway');
    });

    it('switches history branches and resets in place', async () => {
      await ok('volume', 'create', 'hist');
      populate(data('hist'), 60);
      await ok('commit', 'hist', '-m', 'one');
      const one = fingerprint(data('hist'));
      await ok('checkout', '-b', 'hist', 'exp');
      mess(data('hist'));
      await ok('commit', 'hist', '-m', 'two');
      const two = fingerprint(data('hist'));
      writeFileSync(join(data('hist'), 'uncommitted'), 'work in progress');
      const wip = fingerprint(data('hist'));
      await ok('checkout', 'hist', 'master');
      assert.deepEqual(fingerprint(data('hist')), one);
      await clean('hist');
      await ok('checkout', 'hist', 'exp');
      assert.deepEqual(fingerprint(data('hist')), wip, 'the uncommitted work comes back');
      await ok('reset', 'hist', '--hard', 'HEAD');
      assert.deepEqual(fingerprint(data('hist')), two);
      await ok('reset', 'hist', '--hard', 'HEAD^');
      assert.deepEqual(fingerprint(data('hist')), one);
      await clean('hist');
    });

    for (const point of ['restore-staged', 'restore-journaled', 'restore-apply-removed', 'restore-apply-half'] as const) {
      const rollsForward = point !== 'restore-staged';
      it(`kill -9 at ${point} leaves the ${rollsForward ? 'restored' : 'old'} data after the restart, never a mix`, async () => {
        const v = `crash-${point}`;
        await ok('volume', 'create', v);
        populate(data(v), 120);
        const golden = fingerprint(data(v));
        await ok('snapshot', 'create', v, '--name', 'base');
        mess(data(v));
        const changed = fingerprint(data(v));
        const keptInode = inode(join(data(v), 'file-15.bin'));
        // a ferryd that holds 30 s at the point, and says when it got there
        await f.stop();
        const said = join(fs.mountpoint, `paused-${point}`);
        const paused = await startFerryd({ dir: dir(), logLevel: 'info', env: { FERRY_TEST_PAUSE: `${point}:30000`, FERRY_TEST_PAUSE_FILE: said } });
        try {
          const pending = paused.cli('snapshot', 'restore', v, 'base');
          const deadline = Date.now() + 20_000;
          while (!(existsSync(said) && readFileSync(said, 'utf8').includes(point))) {
            assert.ok(Date.now() < deadline, `ferryd did not reach ${point}`);
            await new Promise((r) => setTimeout(r, 20));
          }
          if (point === 'restore-apply-half') assert.notDeepEqual(fingerprint(data(v)), changed, 'killed with the data half restored');
          await paused.crash();
          await pending;
        } finally {
          await paused.destroy();
        }
        await f.start(); // no pauses: recovery at start-up
        const now = fingerprint(data(v));
        if (rollsForward) assert.deepEqual(now, golden, 'the journaled restore was finished at start-up');
        else {
          assert.deepEqual(now, changed, 'the restore that had no journal yet was rolled back');
          assert.equal(inode(join(data(v), 'file-15.bin')), keptInode, 'the live data was not touched');
        }
        await clean(v);
        // and the volume restores normally afterwards
        await ok('snapshot', 'restore', v, 'base');
        assert.deepEqual(fingerprint(data(v)), golden);
        await ok('volume', 'rm', '--purge', v);
      });
    }
  });
}
