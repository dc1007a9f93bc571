/**
 * Volume sizes (issue 16, item 2) on a real ferryd: `-o size=` on a loop-mounted btrfs pool is a qgroup limit
 * on the volume's live subvolume; ext4, xfs and shared pools refuse it naming why. Resize up and down, the limit
 * kept across restart, rm + undelete + re-create of the same name (moby#43891), clones, snapshots, restores
 * (the swap replaces the live subvolume) and the trash under a limit, a limit the filesystem lost set again,
 * and what deleting a snapshot does to the accounting.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { makeLoopFs, loopFsPrerequisites, type LoopFs } from '../helpers/loopfs.js';
import { skipUnless } from '../helpers/prereq.js';
import { fillUntilRefused } from '../helpers/fill.js';
import type { VolumeDetail, VolumeSize } from '../../src/wire/types.js';

const MiB = 2 ** 20;
const skip = skipUnless([...new Set([...loopFsPrerequisites('btrfs'), ...loopFsPrerequisites('ext4'), ...loopFsPrerequisites('xfs')])], 'volume sizes (loop-mounted btrfs, ext4 and xfs)');

/** Write `mib` MiB of random bytes into `file`. */
async function put(file: string, mib: number): Promise<void> {
  await writeFile(file, randomBytes(mib * MiB));
}

const sync = async (path: string) => void (await run('sync', ['-f', path]));

/** The level-0 qgroup of a subvolume as btrfs shows it: referenced, exclusive, max referenced (null: none). */
async function qgroup(path: string): Promise<{ rfer: number; excl: number; max: number | null }> {
  const r = await run('btrfs', ['qgroup', 'show', '-reF', '--raw', path]);
  assert.equal(r.code, 0, r.stderr);
  const row = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => /^0\/\d+$/.test(f[0] ?? ''))!;
  return { rfer: Number(row[1]), excl: Number(row[2]), max: row[3] === 'none' ? null : Number(row[3]) };
}

describe('volume sizes: btrfs qgroups, and refusals where a limit cannot be enforced', { skip }, () => {
  let btrfs: LoopFs;
  let ext4: LoopFs;
  let xfs: LoopFs;
  let share: string;
  let dir: string;
  let f: Ferryd;

  const cli = (...args: string[]) => f.cli(...args);
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const inspect = async (v: string) => JSON.parse(await ok('--json', 'volume', 'inspect', v)) as VolumeDetail;
  const data = (v: string) => join(btrfs.mountpoint, 'volumes', v, 'data');

  before(async () => {
    btrfs = await makeLoopFs('btrfs', 1024);
    ext4 = await makeLoopFs('ext4', 64);
    xfs = await makeLoopFs('xfs', 320);
    dir = await mkdtemp(join(tmpdir(), 'ferry-quota-'));
    share = join(dir, 'share');
    await run('mkdir', [share]);
    await writeFile(join(share, '.ferry-pool'), 'a shared pool for this test\n');
    await writeFile(join(dir, 'key'), 'quota test secret\n', { mode: 0o600 });
    await run('mkdir', [join(dir, 'repo')]);
    await writeFile(
      join(dir, 'ferry.yaml'),
      ['backupTargets:', '  nas:', `    url: file://${join(dir, 'repo')}`, `    passwordFile: ${join(dir, 'key')}`, 'pools:', `  cow:`, `    path: ${btrfs.mountpoint}`, `  plain:`, `    path: ${ext4.mountpoint}/ferry`, `  xfs:`, `    path: ${xfs.mountpoint}/ferry`, `  nas:`, `    path: ${share}`, '    shared: true', 'defaultPool: cow'].join('\n'),
    );
    f = await startFerryd({ dir: join(dir, 'ferryd'), extraArgs: ['--config', join(dir, 'ferry.yaml')] });
  });
  after(async () => {
    await f?.destroy();
    await btrfs?.destroy();
    await ext4?.destroy();
    await xfs?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses nonsense sizes with a message that says what is accepted', async () => {
    for (const bad of ['abc', '10X', '0', '-5G']) {
      const r = await cli('volume', 'create', 'bad', '-o', `size=${bad}`);
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /option size=.*(expected a size such as 10G|too small)/, bad);
    }
    const r = await f.plugin('Create', { Name: 'bad', Opts: { size: 'lots' } });
    assert.match(r.json.Err, /option size="?lots"?: expected a size such as 10G, 512M, 1\.5T/);
  });

  it('ext4, xfs and shared pools refuse size= naming the reason and pointing to image volumes; nothing is created', async (t) => {
    const e = await cli('volume', 'create', 'on-ext4', '-o', 'pool=plain', '-o', 'size=10M');
    assert.equal(e.code, 1);
    assert.match(e.stderr, /pool plain is on ext4: a directory on ext4 can be limited only by a project quota .*(CONFIG_QFMT_V2|config)/);
    assert.match(e.stderr, /image volumes/);
    const x = await cli('volume', 'create', 'on-xfs', '-o', 'pool=xfs', '-o', 'size=10M');
    assert.equal(x.code, 1);
    assert.match(x.stderr, /pool xfs is on xfs: .*(CONFIG_XFS_QUOTA|config)/);
    const n = await cli('volume', 'create', 'on-nas', '-o', 'pool=nas', '-o', 'size=10M');
    assert.equal(n.code, 1);
    assert.match(n.stderr, /pool nas is shared .*cannot set quotas .*image volumes/);
    t.diagnostic(e.stderr.trim());
    const ls = JSON.parse(await ok('--json', 'volume', 'ls')) as Array<{ name: string }>;
    assert.deepEqual(ls.filter((v) => v.name.startsWith('on-')), []);
    // volumes without a size are unaffected there, and cannot be resized
    await ok('volume', 'create', 'plain-vol', '-o', 'pool=plain');
    const rs = await cli('volume', 'resize', 'plain-vol', '10M');
    assert.equal(rs.code, 1);
    assert.match(rs.stderr, /volume plain-vol cannot be resized: pool plain is on ext4/);
  });

  it('a writer past the limit is refused at the limit (within 1 %), with EDQUOT; inspect and Docker\'s Get show limit and use', async (t) => {
    await ok('volume', 'create', 'lim', '-o', 'size=100M');
    assert.equal((await qgroup(data('lim'))).max, 100 * MiB);
    const { written, code } = await fillUntilRefused(join(data('lim'), 'big'));
    t.diagnostic(`writer refused with ${code} after ${written} bytes = ${((100 * written) / (100 * MiB)).toFixed(2)} % of the 100 MiB limit`);
    assert.ok(code === 'EDQUOT' || code === 'ENOSPC', `refused with ${code}`);
    assert.equal(code, 'EDQUOT', 'btrfs qgroups answer EDQUOT ("Disk quota exceeded"), docs/quotas.md says so');
    assert.ok(written >= 0.99 * 100 * MiB && written <= 100 * MiB, `written ${written}: not within 1 % under the limit`);
    await sync(data('lim'));
    const v = await inspect('lim');
    assert.equal(v.options.size, 100 * MiB);
    assert.equal(v.size?.limitBytes, 100 * MiB);
    assert.equal(v.size?.enforcedBytes, 100 * MiB);
    assert.ok(v.size!.usedBytes! >= written && v.size!.usedBytes! <= 100 * MiB, `used ${v.size?.usedBytes}`);
    assert.equal(v.size?.problem, undefined);
    assert.match(await ok('volume', 'inspect', 'lim'), /Options:\s+size=100MiB\nSize:\s+100 MiB, \d+(\.\d)? MiB used \((99|100)%\)/);
    const get = await f.plugin('Get', { Name: 'lim' });
    const st = get.json.Volume.Status;
    assert.equal(st.options.size, '100 MiB');
    assert.equal(st.size.limit, '100 MiB');
    assert.equal(st.size.limitBytes, 100 * MiB);
    assert.ok(st.size.usedBytes >= written, JSON.stringify(st.size));
    // the filesystem itself is far from full: it is the limit that stopped the writer, and deleting frees it
    await unlink(join(data('lim'), 'big'));
    await sync(data('lim'));
    await put(join(data('lim'), 'after'), 10);
  });

  it('resize: down below the use refused, up and down above it applied, and kept across a restart', async () => {
    await ok('volume', 'create', 'rs', '-o', 'size=32M');
    await put(join(data('rs'), 'a'), 20);
    await sync(data('rs'));
    const down = await cli('volume', 'resize', 'rs', '10M');
    assert.equal(down.code, 1);
    assert.match(down.stderr, /volume rs uses 20(\.\d)? MiB .*more than the new size 10 MiB; delete data in it first/);
    assert.equal((await qgroup(data('rs'))).max, 32 * MiB, 'a refused resize changes nothing');
    assert.equal((await inspect('rs')).options.size, 32 * MiB);
    assert.match(await ok('volume', 'resize', 'rs', '64M'), /^rs: 64 MiB, 20(\.\d)? MiB used \(31%\)/);
    assert.equal((await qgroup(data('rs'))).max, 64 * MiB);
    await put(join(data('rs'), 'b'), 30); // 50 MiB: past the old limit
    const bad = await cli('volume', 'resize', 'rs', 'lots');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /size="?lots"?: expected a size/);
    assert.equal((await cli('volume', 'resize', 'nope', '1G')).code, 1);
    await unlink(join(data('rs'), 'b'));
    await sync(data('rs'));
    const r = JSON.parse(await ok('--json', 'volume', 'resize', 'rs', '24M')) as { name: string; size: VolumeSize };
    assert.equal(r.size.limitBytes, 24 * MiB);
    assert.equal(r.size.enforcedBytes, 24 * MiB);
    await f.stop();
    await f.start();
    assert.equal((await inspect('rs')).size?.limitBytes, 24 * MiB);
    assert.equal((await qgroup(data('rs'))).max, 24 * MiB);
    // the API route as well
    assert.equal((await ok('--json', 'volume', 'inspect', 'rs')).includes('"enforcedBytes": 25165824'), true);
  });

  it('rm + undelete + re-create of the same name keep the right limit (moby#43891), through the CLI and the plugin protocol', async () => {
    await ok('volume', 'create', 'again', '-o', 'size=20M');
    const first = (await qgroup(data('again')));
    await ok('volume', 'rm', 'again');
    await ok('volume', 'create', 'again', '-o', 'size=40M');
    assert.equal((await qgroup(data('again'))).max, 40 * MiB, 're-created: its own new limit');
    await ok('volume', 'rm', 'again');
    await ok('volume', 'undelete', 'again'); // the newest removal: the 40M one
    assert.equal((await qgroup(data('again'))).max, 40 * MiB);
    assert.equal((await inspect('again')).size?.enforcedBytes, 40 * MiB);
    await ok('volume', 'rm', 'again');
    const older = (JSON.parse(await ok('--json', 'trash', 'ls')) as Array<{ id: string; name: string; removedAt: string }>).filter((e) => e.name === 'again').sort((a, b) => a.removedAt.localeCompare(b.removedAt))[0]!;
    await ok('volume', 'undelete', older.id, '--as', 'again-old');
    assert.equal((await qgroup(data('again-old'))).max, 20 * MiB, 'undeleted under another name: still its own 20M');
    assert.equal((await inspect('again-old')).size?.enforcedBytes, 20 * MiB);
    assert.equal(first.max, 20 * MiB);
    await ok('volume', 'create', 'again');
    assert.equal((await qgroup(data('again'))).max, null, 're-created without a size: no limit left over');
    assert.equal((await inspect('again')).size, undefined);
    // Docker's way: Remove, then Create with another size
    assert.equal((await f.plugin('Remove', { Name: 'again' })).json.Err, '');
    assert.equal((await f.plugin('Create', { Name: 'again', Opts: { size: '24M' } })).json.Err, '');
    assert.equal((await qgroup(data('again'))).max, 24 * MiB);
    assert.equal((await f.plugin('Remove', { Name: 'again' })).json.Err, '');
    assert.equal((await f.plugin('Create', { Name: 'again', Opts: { size: '24M' } })).json.Err, '');
    assert.equal((await qgroup(data('again'))).max, 24 * MiB);
    await ok('trash', 'purge', '--all');
  });

  it('snapshots, restore (a new live subvolume gets today\'s limit), clones and the trash work under a limit', async () => {
    await ok('volume', 'create', 'snappy', '-o', 'size=32M');
    await put(join(data('snappy'), 'a'), 8);
    await ok('snapshot', 'create', 'snappy', '--name', 's1');
    await ok('volume', 'resize', 'snappy', '48M');
    await unlink(join(data('snappy'), 'a'));
    await put(join(data('snappy'), 'b'), 4);
    await sync(data('snappy'));
    const before = await qgroup(data('snappy'));
    await ok('snapshot', 'restore', 'snappy', 's1');
    const after = await qgroup(data('snappy'));
    // the snapshot was taken under 32M and btrfs copies that limit into its copies: the swap sets 48M
    assert.equal(after.max, 48 * MiB, `restored live data enforces ${after.max}, not the volume's 48 MiB`);
    assert.equal((await inspect('snappy')).size?.enforcedBytes, 48 * MiB);
    assert.ok(after.rfer >= 8 * MiB && after.rfer < 9 * MiB, `restored data references ${after.rfer}`);
    assert.ok(before.rfer < 5 * MiB);
    const full = await fillUntilRefused(join(data('snappy'), 'fill'));
    assert.equal(full.code, 'EDQUOT');
    assert.ok(full.written + 8 * MiB >= 0.98 * 48 * MiB && full.written + 8 * MiB <= 48 * MiB, `refused after ${full.written} + 8 MiB`);
    // a snapshot of a full volume, and of one over a lowered limit
    await ok('snapshot', 'create', 'snappy', '--name', 'full');
    await unlink(join(data('snappy'), 'fill'));
    await sync(data('snappy'));
    await ok('volume', 'resize', 'snappy', '16M');
    const big = await cli('snapshot', 'restore', 'snappy', 'full');
    assert.equal(big.code, 1);
    assert.match(big.stderr, /snapshot full of volume snappy holds \d+(\.\d)? MiB, more than the volume's size 16 MiB; nothing changed/);
    assert.equal((await qgroup(data('snappy'))).max, 16 * MiB);
    assert.ok((await stat(join(data('snappy'), 'a'))).size === 8 * MiB, 'the live data is untouched');
    // clones: a copy of a snapshot would carry the source's limit; without size= it has none, with one its own
    await ok('volume', 'create', 'clone-free', '-o', 'from=snappy@s1');
    assert.equal((await qgroup(data('clone-free'))).max, null);
    await put(join(data('clone-free'), 'more'), 60); // past any limit snappy ever had
    await ok('volume', 'create', 'clone-sized', '-o', 'from=snappy@full', '-o', 'size=100M');
    assert.equal((await qgroup(data('clone-sized'))).max, 100 * MiB);
    // history: a checkout swaps the data too
    await ok('commit', 'snappy', '-m', 'one');
    await ok('checkout', '-b', 'snappy', 'side');
    await ok('volume', 'resize', 'snappy', '20M');
    await ok('checkout', 'snappy', 'master');
    assert.equal((await qgroup(data('snappy'))).max, 20 * MiB);
    // the trash: rm, undelete, purge of sized volumes with snapshots
    await ok('volume', 'rm', 'snappy');
    await ok('volume', 'undelete', 'snappy');
    assert.equal((await qgroup(data('snappy'))).max, 20 * MiB);
    await ok('volume', 'rm', '--purge', 'snappy', 'clone-free', 'clone-sized');
  });

  it('a sized volume is backed up and restored into a sized volume; into one too small the restore fails with no_space and leaves nothing', async () => {
    await ok('backup', 'init', '--target', 'nas');
    await ok('volume', 'create', 'bk', '-o', 'size=32M');
    await put(join(data('bk'), 'a'), 12);
    const url = (await ok('backup', 'create', 'bk', '--target', 'nas')).trim().split('\n').pop()!;
    assert.match(url, /backup=[0-9a-f]+/);
    await ok('backup', 'restore', url, 'bk-back', '-o', 'size=32M');
    assert.equal((await qgroup(data('bk-back'))).max, 32 * MiB);
    assert.equal((await stat(join(data('bk-back'), 'a'))).size, 12 * MiB);
    const small = await cli('backup', 'restore', url, 'bk-small', '-o', 'size=8M');
    assert.equal(small.code, 1);
    assert.match(small.stderr, /a size limit was reached on cow \(Disk quota exceeded\): restoring volume bk-small failed and nothing was kept; give the volume a larger size/);
    assert.equal((await cli('volume', 'inspect', 'bk-small')).code, 1, 'no volume is left by the failed restore');
    assert.equal((await run('test', ['-e', join(btrfs.mountpoint, 'volumes', 'bk-small')])).code, 1, 'nor its directory');
    await ok('volume', 'rm', '--purge', 'bk', 'bk-back');
  });

  it('a limit the filesystem lost (quotas turned off behind ferryd) is set again, by inspect and at start-up, and said', async () => {
    await ok('volume', 'create', 'kept', '-o', 'size=30M');
    let r = await run('btrfs', ['quota', 'disable', btrfs.mountpoint]);
    assert.equal(r.code, 0, r.stderr);
    const v = await inspect('kept');
    assert.match(v.size?.problem ?? '', /the filesystem enforced no limit instead of 30 MiB \(found when asked\); the limit was set again/);
    assert.equal(v.size?.enforcedBytes, 30 * MiB);
    assert.equal((await qgroup(data('kept'))).max, 30 * MiB);
    // every other sized volume lost its limit too: the start-up check sets them all
    r = await run('btrfs', ['quota', 'disable', btrfs.mountpoint]);
    assert.equal(r.code, 0, r.stderr);
    await f.stop();
    await f.start();
    assert.equal((await qgroup(data('kept'))).max, 30 * MiB);
    assert.equal((await qgroup(data('rs'))).max, 24 * MiB);
    assert.match(await f.logs(), /size limit was not enforced: the filesystem enforced no limit instead of 30 MiB \(found at start-up\)/);
    assert.equal((await inspect('kept')).size?.problem, undefined);
  });

  it('measures what deleting a snapshot does to the accounting: the live volume\'s count does not change', async (t) => {
    await ok('volume', 'create', 'acct', '-o', 'size=64M');
    await put(join(data('acct'), 'a'), 20);
    await sync(data('acct'));
    const q0 = await qgroup(data('acct'));
    await ok('snapshot', 'create', 'acct', '--name', 's');
    await sync(data('acct'));
    const q1 = await qgroup(data('acct'));
    await unlink(join(data('acct'), 'a'));
    await put(join(data('acct'), 'b'), 20);
    await sync(data('acct'));
    const q2 = await qgroup(data('acct'));
    await ok('snapshot', 'rm', 'acct', 's');
    await run('btrfs', ['subvolume', 'sync', btrfs.mountpoint]);
    await sync(data('acct'));
    const q3 = await qgroup(data('acct'));
    const qs = await run('btrfs', ['qgroup', 'show', '--raw', btrfs.mountpoint]);
    const m = (n: number) => (n / MiB).toFixed(2);
    t.diagnostic(`20 MiB written: referenced ${m(q0.rfer)} MiB, exclusive ${m(q0.excl)} MiB`);
    t.diagnostic(`after a snapshot: referenced ${m(q1.rfer)}, exclusive ${m(q1.excl)}`);
    t.diagnostic(`file replaced by another 20 MiB: referenced ${m(q2.rfer)}, exclusive ${m(q2.excl)}`);
    t.diagnostic(`snapshot deleted: referenced ${m(q3.rfer)}, exclusive ${m(q3.excl)}; stale qgroups left: ${qs.stdout.includes('<stale>')}`);
    // the limit is on referenced bytes: a snapshot never counts against the live volume, before or after its deletion
    assert.ok(Math.abs(q1.rfer - q0.rfer) < MiB && q1.excl < MiB, 'a snapshot shares everything: the live data references as much, owns almost nothing alone');
    assert.ok(q2.rfer >= 20 * MiB && q2.rfer < 21 * MiB, 'the snapshot\'s 20 MiB do not count against the live data');
    assert.ok(Math.abs(q3.rfer - q2.rfer) < MiB, 'deleting the snapshot changes nothing the limit counts');
    assert.ok(q3.excl >= 20 * MiB, 'what the live data shared is its own again');
    assert.equal(qs.stdout.includes('<stale>'), false, 'the deleted snapshot\'s qgroup is gone once the subvolume is cleaned');
    assert.equal(q3.max, 64 * MiB);
  });
});
