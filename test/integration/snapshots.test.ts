import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, writeFileSync, rmSync, appendFileSync, chmodSync, readdirSync, readFileSync, existsSync, mkdirSync, linkSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { FERRY_BIN, startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import { spawnSync } from 'node:child_process';
import { makeLoopFs, loopFsPrerequisites, type FsKind, type LoopFs } from '../helpers/loopfs.js';
import { populate, fingerprint, fileInodes } from '../helpers/tree.js';
import { skipUnless } from '../helpers/prereq.js';

/** A fingerprint without the root directory's own entry (a clone's root is a new directory). */
const withoutRoot = (fp: Record<string, unknown>) => Object.fromEntries(Object.entries(fp).filter(([k]) => k !== '.'));

/** The non-directory entries a snapshot's own tree stores (not what it shares with earlier ones). */
function storedFiles(snaps: string, id: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = rel ? join(snaps, id, rel) : join(snaps, id);
    if (lstatSync(p).isDirectory()) for (const e of readdirSync(p)) walk(rel ? `${rel}/${e}` : e);
    else out.push(rel);
  };
  walk('');
  return out.sort();
}

const expectedMethod: Record<FsKind, string> = { ext4: 'hardlink', btrfs: 'btrfs', xfs: 'reflink' };

for (const kind of ['ext4', 'btrfs', 'xfs'] as const) {
  const skip = skipUnless(loopFsPrerequisites(kind), `snapshots on ${kind}`);

  describe(`snapshots, clones and history on a ${kind} pool`, { skip }, () => {
    let fs: LoopFs;
    let f: Ferryd;
    const data = (v: string) => join(f.dataDir, 'volumes', v, 'data');
    const ok = async (...args: string[]) => {
      const r = await f.cli(...args);
      assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const json = async (...args: string[]) => JSON.parse(await ok('--json', ...args));
    const snapsDir = (v: string) => join(f.dataDir, 'volumes', v, 'snapshots');
    /** What a snapshot holds, as a user sees it: the fingerprint of a clone made from it (then removed). */
    let views = 0;
    const contents = async (v: string, snap: string) => {
      const name = `view-${views++}`;
      await ok('volume', 'create', name, '-o', `from=${v}@${snap}`);
      try {
        return withoutRoot(fingerprint(data(name)));
      } finally {
        await ok('volume', 'rm', '--purge', name);
      }
    };

    before(async () => {
      fs = await makeLoopFs(kind);
      f = await startFerryd({ dir: join(fs.mountpoint, 'ferry') });
    });
    after(async () => {
      await f?.destroy();
      await fs?.destroy();
    });

    it(`picks the ${expectedMethod[kind]} method and says so in status`, async () => {
      const s = await json('status');
      assert.equal(s.pools[0].snapshotMethod, expectedMethod[kind]);
      assert.match(await ok('status'), new RegExp(`^local\\s+dir\\s+ok\\s+${expectedMethod[kind]}\\s`, 'm'));
    });

    it('restores byte-identical data with modes, owners, times, links, empty dirs, sparse files and FIFOs', async () => {
      await ok('volume', 'create', 'snap-rt');
      populate(data('snap-rt'));
      const before = fingerprint(data('snap-rt'));
      const s = await json('snapshot', 'create', 'snap-rt', '--name', 'golden');
      assert.equal(s.name, 'golden');
      assert.equal(s.method, expectedMethod[kind]);
      // change everything a container could
      writeFileSync(join(data('snap-rt'), 'a/file-1.bin'), 'overwritten');
      rmSync(join(data('snap-rt'), 'a/b/c'), { recursive: true });
      chmodSync(join(data('snap-rt'), 'file-0.bin'), 0o777);
      appendFileSync(join(data('snap-rt'), 'hard-1'), ' and more');
      writeFileSync(join(data('snap-rt'), 'new-file'), 'new');
      rmSync(join(data('snap-rt'), 'empty'), { recursive: true });
      assert.notDeepEqual(fingerprint(data('snap-rt')), before);
      // the snapshot itself is untouched by changes to the live data
      assert.deepEqual(await contents('snap-rt', s.id), withoutRoot(before));
      await ok('snapshot', 'restore', 'snap-rt', 'golden');
      const after = fingerprint(data('snap-rt'));
      assert.deepEqual(after, before);
      assert.ok(after['sparse.img']!.allocatedMiB! <= 2, 'the sparse file stays sparse');
      // the live data never shares an inode with a snapshot
      const live = fileInodes(data('snap-rt'));
      for (const ino of fileInodes(snapsDir('snap-rt'))) assert.ok(!live.has(ino), 'live data shares an inode with a snapshot');
    });

    it('makes the next snapshot from what changed: unchanged files and symlinks are shared between snapshots', { skip: kind === 'btrfs' && 'btrfs snapshots share everything by themselves' }, async () => {
      await ok('volume', 'create', 'snap-inc');
      populate(data('snap-inc'), 20);
      const s1 = await json('snapshot', 'create', 'snap-inc');
      const fp1 = withoutRoot(fingerprint(data('snap-inc')));
      writeFileSync(join(data('snap-inc'), 'a/file-1.bin'), 'changed');
      const s2 = await json('snapshot', 'create', 'snap-inc');
      const fp2 = withoutRoot(fingerprint(data('snap-inc')));
      // the second snapshot stores only the changed file: everything else is the first one's copy
      assert.deepEqual(storedFiles(snapsDir('snap-inc'), s2.id), ['a/file-1.bin']);
      assert.equal(s2.stats.copied, 1);
      assert.ok(s2.stats.linked > 20, 'the unchanged files and symlinks are shared');
      assert.deepEqual(await contents('snap-inc', s2.id), fp2);
      assert.deepEqual(await contents('snap-inc', s1.id), fp1);
      const live = fileInodes(data('snap-inc'));
      for (const ino of fileInodes(snapsDir('snap-inc'))) assert.ok(!live.has(ino), 'live data shares an inode with a snapshot');
      await ok('volume', 'rm', '--purge', 'snap-inc');
    });

    it('lists, inspects and removes snapshots; refuses bad names and unknown refs', async () => {
      const a = await json('snapshot', 'create', 'snap-rt');
      assert.match(a.name, /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
      const ls = await ok('snapshot', 'ls', 'snap-rt');
      assert.match(ls, /^ID\s+NAME\s+KIND\s+CREATED\s+METHOD\s+TOOK$/m);
      assert.match(ls, new RegExp(`^[0-9a-f]{12}\\s+golden\\s+snapshot\\s`, 'm'));
      const byPrefix = await json('snapshot', 'inspect', 'snap-rt', a.id.slice(0, 6));
      assert.equal(byPrefix.id, a.id);
      assert.match(await ok('snapshot', 'inspect', 'snap-rt', 'golden'), /^Consistency:\s+crash-consistent$/m);
      const dup = await f.cli('snapshot', 'create', 'snap-rt', '--name', 'golden');
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /already has a snapshot named golden/);
      assert.match((await f.cli('snapshot', 'create', 'snap-rt', '--name', '../x')).stderr, /snapshot name "\.\.\/x"/);
      assert.match((await f.cli('snapshot', 'inspect', 'snap-rt', 'nope')).stderr, /has no snapshot "nope"/);
      assert.match((await f.cli('snapshot', 'ls', '../../etc')).stderr, /invalid volume name/);
      await ok('snapshot', 'rm', 'snap-rt', a.id);
      assert.equal((await json('snapshot', 'ls', 'snap-rt')).length, 1);
      assert.ok(!existsSync(join(f.dataDir, 'volumes', 'snap-rt', 'snapshots', a.id)));
    });

    it('makes later snapshots cost what changed' + (kind === 'ext4' ? ' (hard links to the previous one)' : ''), async () => {
      await ok('volume', 'create', 'incr');
      for (let i = 0; i < 300; i++) writeFileSync(join(data('incr'), `f${i}`), `content ${i}`.repeat(100));
      const first = await json('snapshot', 'create', 'incr');
      writeFileSync(join(data('incr'), 'f7'), 'changed');
      writeFileSync(join(data('incr'), 'added'), 'added');
      const second = await json('snapshot', 'create', 'incr');
      if (kind === 'ext4') {
        assert.equal(first.stats.copied, 300);
        assert.equal(second.stats.linked, 299);
        assert.equal(second.stats.copied, 2);
      }
      const t2 = join(f.dataDir, 'volumes', 'incr', 'snapshots', second.id);
      assert.equal(readFileSync(join(t2, 'f7'), 'utf8'), 'changed');
      assert.equal(readFileSync(join(f.dataDir, 'volumes', 'incr', 'snapshots', first.id, 'f7'), 'utf8'), 'content 7'.repeat(100));
    });

    it('keeps every snapshot whole whichever others are removed, in any order', async () => {
      await ok('volume', 'create', 'chain');
      const d = data('chain');
      populate(d, 60);
      const expected = new Map<string, Record<string, unknown>>();
      const ids: string[] = [];
      // each round changes a different part: rewrite, append, delete, add, chmod, a new hard link, a dir removed
      const rounds: Array<() => void> = [
        () => writeFileSync(join(d, 'file-0.bin'), 'round 1'),
        () => {
          appendFileSync(join(d, 'a/file-1.bin'), 'round 2');
          rmSync(join(d, 'file-3.bin'));
          writeFileSync(join(d, 'added-2'), 'added in round 2');
        },
        () => {
          chmodSync(join(d, 'file-6.bin'), 0o600);
          linkSync(join(d, 'added-2'), join(d, 'a/added-2-link'));
          rmSync(join(d, 'a/b/c'), { recursive: true });
        },
        () => {
          writeFileSync(join(d, 'file-0.bin'), 'round 4');
          mkdirSync(join(d, 'new-dir/deeper'), { recursive: true });
          writeFileSync(join(d, 'new-dir/deeper/x'), 'x');
        },
        () => undefined, // nothing changed
      ];
      for (const change of [() => undefined, ...rounds]) {
        change();
        const snap = await json('snapshot', 'create', 'chain');
        ids.push(snap.id);
        expected.set(snap.id, withoutRoot(fingerprint(d)));
      }
      // the oldest (which holds most files), one in the middle, the newest, then the rest
      for (const id of [ids[0]!, ids[3]!, ids[5]!, ids[1]!]) {
        await ok('snapshot', 'rm', 'chain', id);
        expected.delete(id);
        for (const [left, fp] of expected) assert.deepEqual(await contents('chain', left), fp, `snapshot ${left} after removing ${id}`);
      }
      // and the next snapshots build on what is left (their manifests were rewritten by the removals)
      writeFileSync(join(d, 'after-removals'), 'new');
      for (let k = 0; k < 2; k++) {
        const snap = await json('snapshot', 'create', 'chain');
        expected.set(snap.id, withoutRoot(fingerprint(d)));
        if (kind !== 'btrfs' && k === 1) assert.equal(snap.stats.copied, 0, 'nothing changed since the one before');
      }
      for (const [left, fp] of expected) assert.deepEqual(await contents('chain', left), fp, `snapshot ${left} at the end`);
      const live = fileInodes(d);
      for (const ino of fileInodes(snapsDir('chain'))) assert.ok(!live.has(ino), 'live data shares an inode with a snapshot');
      await ok('volume', 'rm', '--purge', 'chain');
    });

    it('refuses a file name that is not valid UTF-8, naming it, instead of leaving it out', { skip: kind === 'btrfs' && 'btrfs snapshots copy names as bytes' }, async () => {
      await ok('volume', 'create', 'latin1');
      // large enough that the next walk runs on several threads
      for (let i = 0; i < 60; i++) {
        mkdirSync(join(data('latin1'), `d${i}`));
        for (let k = 0; k < 80; k++) writeFileSync(join(data('latin1'), `d${i}`, `f${k}`), `${i}/${k}`);
      }
      const good = await json('snapshot', 'create', 'latin1');
      writeFileSync(Buffer.concat([Buffer.from(`${data('latin1')}/d31/caf`), Buffer.from([0xe9])]), 'latin-1 name');
      for (let round = 0; round < 2; round++) {
        const r = await f.cli('snapshot', 'create', 'latin1');
        assert.equal(r.code, 1);
        assert.match(r.stderr, /d31 holds a file name that is not valid UTF-8 \("caf.*"\); snapshots cannot keep it: rename it/);
        assert.deepEqual((await json('snapshot', 'ls', 'latin1')).map((x: { id: string }) => x.id), [good.id], 'no new snapshot listed');
        assert.deepEqual(readdirSync(snapsDir('latin1')).sort(), [good.id, `${good.id}.json`, `${good.id}.manifest.json`].sort(), 'nothing left behind');
      }
      await ok('volume', 'rm', '--purge', 'latin1');
    });

    it('snapshots several volumes at once, each to its own point in time', async () => {
      const names = ['par-a', 'par-b', 'par-c', 'par-d'];
      for (const n of names) {
        await ok('volume', 'create', n);
        populate(data(n), 30);
        writeFileSync(join(data(n), 'whoami'), n);
      }
      for (let round = 0; round < 2; round++) {
        const expected = names.map((n) => withoutRoot(fingerprint(data(n))));
        const snaps = await Promise.all(names.map((n) => json('snapshot', 'create', n)));
        for (const n of names) writeFileSync(join(data(n), 'whoami'), `${n} changed after round ${round}`);
        for (let i = 0; i < names.length; i++) assert.deepEqual(await contents(names[i]!, snaps[i].id), expected[i], `${names[i]} round ${round}`);
      }
      for (const n of names) await ok('volume', 'rm', '--purge', n);
    });

    it('removes a snapshot that later ones depend on safely across kill -9', async () => {
      await ok('volume', 'create', 'crash-rm');
      const d = data('crash-rm');
      mkdirSync(join(d, 'many'));
      for (let i = 0; i < 12_000; i++) writeFileSync(join(d, 'many', `f${i}`), `first ${i}`);
      const base = await json('snapshot', 'create', 'crash-rm');
      const expected = new Map<string, Record<string, unknown>>([[base.id, withoutRoot(fingerprint(d))]]);
      for (let round = 0; round < 3; round++) {
        writeFileSync(join(d, 'many', `f${round}`), `round ${round}`);
        const s = await json('snapshot', 'create', 'crash-rm');
        expected.set(s.id, withoutRoot(fingerprint(d)));
      }
      for (let round = 0; round < 3; round++) {
        const oldest = (await json('snapshot', 'ls', 'crash-rm'))[0].id as string;
        // straight to the API socket (no CLI start-up), then kill -9 early, midway and late in the removal
        const pending = unixRequest(f.apiSocket, 'DELETE', `/v1/volumes/crash-rm/snapshots/${oldest}`).catch(() => undefined);
        await new Promise((r) => setTimeout(r, [10, 80, 200][round]));
        await f.crash();
        await pending;
        await f.start();
        const listed = (await json('snapshot', 'ls', 'crash-rm')).map((s: { id: string }) => s.id);
        if (!listed.includes(oldest)) expected.delete(oldest);
        assert.deepEqual(listed, [...expected.keys()], 'a snapshot is listed or gone, nothing else changes');
        for (const [id, fp] of expected) assert.deepEqual(await contents('crash-rm', id), fp, `snapshot ${id} after a crash while removing ${oldest}`);
      }
      await ok('volume', 'rm', '--purge', 'crash-rm');
    });

    it('clones a snapshot into a new writable volume, leaving source and snapshot untouched', async () => {
      const src = fingerprint(data('snap-rt')); // restored from golden above
      const snap = await json('snapshot', 'inspect', 'snap-rt', 'golden');
      await ok('volume', 'create', 'snap-clone', '-o', 'from=snap-rt@golden');
      assert.deepEqual(withoutRoot(fingerprint(data('snap-clone'))), withoutRoot(src));
      writeFileSync(join(data('snap-clone'), 'file-0.bin'), 'clone was here');
      rmSync(join(data('snap-clone'), 'a'), { recursive: true });
      assert.deepEqual(fingerprint(data('snap-rt')), src);
      assert.deepEqual(await contents('snap-rt', snap.id), withoutRoot(src));
      assert.match((await f.cli('volume', 'create', 'bad-clone', '-o', 'from=snap-rt@nope')).stderr, /has no snapshot "nope"/);
      assert.match((await f.cli('volume', 'create', 'bad-clone', '-o', 'from=snap-rt')).stderr, /write it VOLUME@SNAPSHOT/);
      assert.equal((await f.cli('volume', 'inspect', 'bad-clone')).code, 1, 'a failed clone leaves no volume behind');
    });

    it('refuses to restore a volume in use, naming what holds it', async () => {
      await f.plugin('Mount', { Name: 'snap-rt', ID: 'holder-1' });
      const r = await f.cli('snapshot', 'restore', 'snap-rt', 'golden');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /volume snap-rt is in use by 1 Docker mount; stop it first, or pass --restart-containers/);
      // a snapshot of a mounted volume claims one instant only where the method gives one (btrfs)
      const busy = await json('snapshot', 'create', 'snap-rt', '--name', 'while-mounted');
      assert.equal(busy.consistency, kind === 'btrfs' ? 'crash' : 'file-by-file');
      assert.match(await ok('snapshot', 'inspect', 'snap-rt', 'while-mounted'), kind === 'btrfs' ? /^Consistency:\s+crash-consistent$/m : /^Consistency:\s+file by file, while in use \(--pause for one instant\)$/m);
      await f.plugin('Unmount', { Name: 'snap-rt', ID: 'holder-1' });
      const idle = await json('snapshot', 'create', 'snap-rt', '--name', 'unmounted');
      assert.equal(idle.consistency, 'crash', 'nothing had it mounted: the data as it lay');
      for (const n of ['while-mounted', 'unmounted']) await ok('snapshot', 'rm', 'snap-rt', n);
    });

    it('keeps a git-like history: commit, log, branch, checkout, reset', async () => {
      await ok('volume', 'create', 'hist');
      const file = () => readFileSync(join(data('hist'), 'state'), 'utf8');
      writeFileSync(join(data('hist'), 'state'), 'v1');
      const c1 = await json('commit', 'hist', '-m', 'first');
      writeFileSync(join(data('hist'), 'state'), 'v2');
      const c2 = await json('commit', 'hist', '-m', 'second');
      assert.equal(c2.parent, c1.id);
      const log = await ok('log', 'hist');
      assert.match(log, new RegExp(`^${c2.id}\\s.*second$[\\s\\S]*^${c1.id}\\s.*first$`, 'm'));
      await ok('checkout', '-b', 'hist', 'experiment');
      assert.equal(file(), 'v2', 'checkout -b keeps the data');
      writeFileSync(join(data('hist'), 'state'), 'exp-1');
      const e1 = await json('commit', 'hist', '-m', 'experiment 1');
      writeFileSync(join(data('hist'), 'state'), 'exp-uncommitted');
      await ok('checkout', 'hist', 'master');
      assert.equal(file(), 'v2');
      const branches = await ok('branch', 'hist');
      assert.match(branches, /^\* master\s+[0-9a-f]{12}$/m);
      assert.match(branches, /^  experiment\s+[0-9a-f]{12}$/m);
      await ok('checkout', 'hist', 'experiment');
      assert.equal(file(), 'exp-uncommitted', 'uncommitted work of a branch survives switching away and back');
      await ok('reset', 'hist', '--hard', 'HEAD');
      assert.equal(file(), 'exp-1');
      await ok('reset', 'hist', '--hard', 'HEAD^');
      assert.equal(file(), 'v2');
      assert.equal((await json('log', 'hist')).commits[0].id, c2.id);
      await ok('reset', 'hist', '--hard', e1.id.slice(0, 6));
      assert.equal(file(), 'exp-1');
      await ok('reset', 'hist', '--hard', 'HEAD~2');
      assert.equal(file(), 'v1');
      assert.match((await f.cli('reset', 'hist', '--hard', 'HEAD~5')).stderr, /goes back past the first commit/);
      assert.match((await f.cli('reset', 'hist')).stderr, /only hard resets exist/);
      assert.match((await f.cli('checkout', 'hist', 'nobranch')).stderr, /has no branch nobranch/);
      const tip = (await json('branch', 'hist')).branches.find((b: { name: string }) => b.name === 'experiment').tip;
      assert.match((await f.cli('snapshot', 'rm', 'hist', tip)).stderr, /is the tip of branch experiment of hist: move the branch off it first \(`ferry checkout hist BRANCH`, then `ferry reset hist --hard REF`\), or delete the branch \(`ferry branch -d hist BRANCH`\)/);
    });

    it('deletes a branch as git does: never the current one, one with commits of its own or uncommitted data only with -D; its commits stay as snapshots', async () => {
      await ok('volume', 'create', 'del');
      const file = () => readFileSync(join(data('del'), 'state'), 'utf8');
      writeFileSync(join(data('del'), 'state'), 'base');
      const base = await json('commit', 'del', '-m', 'base');
      await ok('branch', 'del', 'merged');
      await ok('checkout', '-b', 'del', 'side');
      writeFileSync(join(data('del'), 'state'), 'side 1');
      const s1 = await json('commit', 'del', '-m', 'side 1');
      writeFileSync(join(data('del'), 'state'), 'side, not committed');
      await ok('checkout', 'del', 'master');
      assert.equal(file(), 'base');
      // the log of another branch than the current one
      assert.deepEqual((await json('log', 'del', 'side')).commits.map((c: { id: string }) => c.id), [s1.id, base.id]);
      assert.match(await ok('log', 'del', 'side'), new RegExp(`^${s1.id}\\s.*side 1$`, 'm'));
      assert.match((await f.cli('log', 'del', 'nobranch')).stderr, /volume del has no branch nobranch; `ferry branch del` lists them/);

      const current = await f.cli('branch', '-d', 'del', 'master');
      assert.equal(current.code, 1);
      assert.match(current.stderr, /del is on branch master; `ferry checkout del OTHER` to another branch first/);
      assert.match((await f.cli('branch', '-d', 'del', 'nope')).stderr, /volume del has no branch nope/);
      // names of Object.prototype's members are names like any other
      assert.match((await f.cli('branch', '-d', 'del', 'constructor')).stderr, /volume del has no branch constructor/);
      assert.match((await f.cli('log', 'del', 'toString')).stderr, /volume del has no branch toString/);
      assert.match((await f.cli('reset', 'del', '--hard', 'constructor')).stderr, /no commit "constructor" in the history of del/);
      assert.equal(await ok('branch', 'del', 'constructor'), `branch constructor at ${base.id}\n`);
      assert.equal(await ok('branch', '-d', 'del', 'constructor'), `deleted branch constructor of del (was ${base.id})\n`);
      const noName = await f.cli('branch', '-d', 'del');
      assert.equal(noName.code, 2, noName.stderr);
      // a branch with nothing of its own goes with -d
      assert.equal(await ok('branch', '-d', 'del', 'merged'), `deleted branch merged of del (was ${base.id})\n`);
      // one with a commit of its own and saved working data is refused, and kept whole
      const refused = await f.cli('branch', '-d', 'del', 'side');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /branch side of del holds 1 commit on no other branch and uncommitted working data \(snapshot [0-9a-f]+\); `ferry branch -D del side` deletes it anyway \(its commits stay as snapshots, on no branch\), and the uncommitted data goes/);
      assert.deepEqual((await json('branch', 'del')).branches.map((b: { name: string }) => b.name), ['master', 'side']);
      await ok('checkout', 'del', 'side');
      assert.equal(file(), 'side, not committed', 'a refused delete keeps the uncommitted data');
      await ok('checkout', 'del', 'master');

      const d = await json('branch', '-D', 'del', 'side');
      assert.equal(d.name, 'side');
      assert.equal(d.tip, s1.id);
      assert.deepEqual(d.orphaned, [s1.id]);
      assert.match(d.droppedWorktree, /^[0-9a-f]+$/);
      assert.deepEqual((await json('branch', 'del')).branches.map((b: { name: string }) => b.name), ['master']);
      const left = (await json('snapshot', 'ls', 'del', '--all')).map((x: { id: string }) => x.id);
      assert.ok(left.includes(s1.id), 'the commit of the deleted branch is kept');
      assert.ok(!left.includes(d.droppedWorktree), 'its saved working data is gone');
      assert.equal(file(), 'base', 'the current data is untouched');
      // the kept commit is named by its id: read back, then removed
      await ok('volume', 'create', 'del-side', '-o', `from=del@${s1.id}`);
      assert.equal(readFileSync(join(data('del-side'), 'state'), 'utf8'), 'side 1');
      await ok('volume', 'rm', '--purge', 'del-side');
      await ok('snapshot', 'rm', 'del', s1.id);
      assert.deepEqual((await json('log', 'del')).commits.map((c: { id: string }) => c.id), [base.id]);
    });

    it('keeps a history whole when a commit in its middle is removed, and refuses branch names that read as commits', async () => {
      await ok('volume', 'create', 'mid');
      const file = () => readFileSync(join(data('mid'), 'state'), 'utf8');
      const commits = [];
      for (const v of ['v1', 'v2', 'v3']) {
        writeFileSync(join(data('mid'), 'state'), v);
        commits.push(await json('commit', 'mid', '-m', `commit ${v}`));
      }
      const [m1, m2, m3] = commits;
      await ok('snapshot', 'rm', 'mid', m2.id);
      const log = (await json('log', 'mid')).commits as Array<{ id: string; parent?: string }>;
      assert.deepEqual(log.map((c) => c.id), [m3.id, m1.id], 'the log goes on past the removed commit');
      assert.equal(log[0]!.parent, m1.id);
      await ok('reset', 'mid', '--hard', 'HEAD^');
      assert.equal(file(), 'v1', 'HEAD^ is the commit before the removed one');
      await ok('reset', 'mid', '--hard', m3.id);
      await ok('snapshot', 'rm', 'mid', m1.id);
      assert.equal((await json('log', 'mid')).commits[0].parent, undefined, 'the first commit removed: the next one is the first');
      assert.match((await f.cli('reset', 'mid', '--hard', 'HEAD^')).stderr, /goes back past the first commit/);
      for (const name of ['HEAD', m3.id.slice(0, 8), 'cafe']) {
        const r = await f.cli('branch', 'mid', name);
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`branch name "${name}" would read as (the current commit|a commit id) in reset and checkout`));
      }
      await ok('branch', 'mid', 'cafe-2');

      // a branch's saved working data: listed by --json, and its removal refused saying what it holds
      await ok('checkout', '-b', 'mid', 'side');
      writeFileSync(join(data('mid'), 'state'), 'side, not committed');
      await ok('checkout', 'mid', 'master');
      const saved = ((await json('snapshot', 'ls', 'mid')) as Array<{ id: string; kind: string }>).find((x) => x.kind === 'worktree');
      assert.ok(saved, '--json lists the saved working data too');
      const rmSaved = await f.cli('snapshot', 'rm', 'mid', saved.id);
      assert.equal(rmSaved.code, 1);
      assert.match(rmSaved.stderr, /holds the uncommitted working data of branch side, kept while another branch is checked out/);
      assert.match((await f.cli('reset', 'mid', '--hard', m3.id.slice(0, 3))).stderr, /a commit id prefix needs at least 4 characters/);
      assert.equal((await f.cli('commit', 'mid', '-m', ' ')).code, 2, 'an empty message is wrong usage');
      assert.equal((await f.cli('reset', 'mid', '--hard')).code, 2);

      // the log shows a message's first line; a commit whose output cannot be written is still made
      const full = spawnSync(process.execPath, [FERRY_BIN, 'commit', 'mid', '-m', 'line one\nline\ttwo'], { stdio: ['ignore', openSync('/dev/full', 'w'), 'pipe'], env: { ...process.env, ...f.env } });
      assert.equal(full.status, 1);
      assert.match(full.stderr.toString(), /^ferry: could not write the output \(ENOSPC: .*\); the command itself completed\n$/);
      const log2 = await ok('log', 'mid');
      assert.match(log2, /^[0-9a-f]{12} .* line one$/m);
      assert.doesNotMatch(log2, /two/);
      assert.equal((await json('log', 'mid')).commits[0].message, 'line one\nline\ttwo');
      // a clone of a branch is a clone of its tip commit (not of its saved working data)
      await ok('volume', 'create', 'mid-side', '-o', 'from=mid@side');
      assert.equal(readFileSync(join(data('mid-side'), 'state'), 'utf8'), 'v3');
      await ok('volume', 'rm', '--purge', 'mid-side');
      await ok('volume', 'rm', '--purge', 'mid');
    });

    it('never lists a half snapshot and never mixes data after kill -9 mid-snapshot or mid-restore', async () => {
      await ok('volume', 'create', 'crashy');
      mkdirSync(join(data('crashy'), 'many'));
      for (let i = 0; i < 3000; i++) writeFileSync(join(data('crashy'), 'many', `f${i}`), `before ${i}`);
      const beforeFp = fingerprint(data('crashy'));
      await ok('snapshot', 'create', 'crashy', '--name', 'base');
      for (let i = 0; i < 3000; i++) writeFileSync(join(data('crashy'), 'many', `f${i}`), `after ${i}`);
      const afterFp = fingerprint(data('crashy'));
      for (let round = 0; round < 3; round++) {
        const pending = f.cli('snapshot', 'create', 'crashy', '--name', `mid-${round}`);
        await new Promise((r) => setTimeout(r, 40 + round * 60));
        await f.crash();
        await pending;
        await f.start();
        const snaps = await json('snapshot', 'ls', 'crashy');
        for (const s of snaps) assert.ok(existsSync(join(f.dataDir, 'volumes', 'crashy', 'snapshots', s.id)));
        assert.ok(!readdirSync(join(f.dataDir, 'volumes', 'crashy', 'snapshots')).some((e) => e.startsWith('.tmp-')), 'no half snapshot left');
      }
      for (let round = 0; round < 3; round++) {
        const pending = f.cli('snapshot', 'restore', 'crashy', 'base');
        await new Promise((r) => setTimeout(r, 30 + round * 80));
        await f.crash();
        await pending;
        await f.start();
        const now = fingerprint(data('crashy'));
        const same = (a: object, b: object) => JSON.stringify({ ...a, '.': 0 }) === JSON.stringify({ ...b, '.': 0 });
        assert.ok(same(now, beforeFp) || same(now, afterFp), 'after a crash the data is wholly before or wholly after');
        if (same(now, beforeFp)) {
          for (let i = 0; i < 3000; i++) writeFileSync(join(data('crashy'), 'many', `f${i}`), `after ${i}`);
          Object.assign(afterFp, fingerprint(data('crashy')));
        }
      }
    });
  });
}
