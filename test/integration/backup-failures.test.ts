/**
 * Failed backups leave nothing behind (issue 11, item 4), against a real ferryd and real repositories on
 * disk: a missing target, an uninitialised repository and a wrong password fail before any snapshot is
 * taken; a target that fills up in the middle of a backup (a small loop-mounted ext4) fails and its
 * snapshot goes again while the base of the earlier backup stays; a restore into a name that is taken is
 * refused before a job starts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { makeLoopFs, loopFsPrerequisites, type LoopFs } from '../helpers/loopfs.js';
import { skipUnless } from '../helpers/prereq.js';

const missing = loopFsPrerequisites('ext4');

describe('failed backups leave no snapshot behind', { skip: skipUnless(missing, 'backup failures (a full target is a loop-mounted ext4)') }, () => {
  let base: string;
  let small: LoopFs;
  let f: Ferryd;
  const vol = 'failing';

  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const snapshots = async () => (JSON.parse(await ok('--json', 'snapshot', 'ls', vol)) as Array<{ id: string; name: string; origin: string }>).map((s) => `${s.id} ${s.name} ${s.origin}`);
  /** Bytes allocated under the volume's directory (data, snapshots, manifests), as `du` counts them. */
  const volumeBytes = async () => {
    const r = await run('du', ['-s', '--block-size=1', join(f.dataDir, 'volumes', vol)]);
    assert.equal(r.code, 0, r.stderr);
    return Number(r.stdout.split(/\s/)[0]);
  };
  const jobIds = async () => (JSON.parse(await ok('--json', 'job', 'ls')) as Array<{ id: string }>).map((j) => j.id).sort();

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-backup-fail-'));
    small = await makeLoopFs('ext4', 8);
    await writeFile(join(base, 'key'), 'the right secret\n', { mode: 0o600 });
    await writeFile(join(base, 'other-key'), 'a wrong secret\n', { mode: 0o600 });
    await mkdir(join(base, 'good'));
    await mkdir(join(base, 'empty'));
    await mkdir(join(small.mountpoint, 'repo'));
    await writeFile(
      join(base, 'ferry.yaml'),
      [
        'backupTargets:',
        '  good:',
        `    url: file://${join(base, 'good')}`,
        `    passwordFile: ${join(base, 'key')}`,
        '  gone:',
        `    url: file://${join(base, 'not-mounted')}`,
        `    passwordFile: ${join(base, 'key')}`,
        '  uninitialised:',
        `    url: file://${join(base, 'empty')}`,
        `    passwordFile: ${join(base, 'key')}`,
        '  wrongkey:',
        `    url: file://${join(base, 'good')}`,
        `    passwordFile: ${join(base, 'other-key')}`,
        '  small:',
        `    url: file://${join(small.mountpoint, 'repo')}`,
        `    passwordFile: ${join(base, 'key')}`,
      ].join('\n'),
    );
    f = await startFerryd({ dir: join(base, 'host'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
    await ok('backup', 'init', '--target', 'good');
    await ok('backup', 'init', '--target', 'small');
    await ok('volume', 'create', vol);
    // 24 MiB that does not compress: more than the 8 MiB target can hold
    const data = join(f.dataDir, 'volumes', vol, 'data');
    for (let i = 0; i < 6; i++) await writeFile(join(data, `part-${i}`), randomBytes(4 << 20));
  });
  after(async () => {
    await f?.destroy();
    await small?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('a first backup succeeds and keeps its snapshot as the base of the next one', async () => {
    const out = await ok('backup', 'create', vol, '--target', 'good');
    assert.match(out, /backup=[0-9a-f]+&volume=failing/);
    const snaps = await snapshots();
    assert.equal(snaps.length, 1);
    assert.match(snaps[0]!, / backup$/);
  });

  const early: Array<[string, RegExp]> = [
    ['gone', /does not exist \(is the share mounted\?\)/],
    ['uninitialised', /is not a Ferry backup repository.*ferry backup init/],
    ['wrongkey', /wrong password or key file for target wrongkey \(file:\/\/\S+\): the key file \S+ does not open it/],
  ];
  for (const [target, message] of early) {
    it(`target ${target}: fails at once with a clear error, no snapshot taken, no byte written`, async () => {
      const snaps = await snapshots();
      const bytes = await volumeBytes();
      const jobs = await jobIds();
      const r = await f.cli('backup', 'create', vol, '--target', target);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, message);
      assert.deepEqual(await snapshots(), snaps);
      assert.equal(await volumeBytes(), bytes);
      assert.deepEqual(await jobIds(), jobs, 'no job was started');
    });
  }

  it('a target that fills up during the backup: the backup fails, its snapshot is removed, the base stays', async () => {
    const snaps = await snapshots();
    const bytes = await volumeBytes();
    const r = await f.cli('backup', 'create', vol, '--target', 'small');
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /is full \(ENOSPC\)/);
    assert.deepEqual(await snapshots(), snaps);
    assert.equal(await volumeBytes(), bytes);
    assert.match(await f.logs(), /the snapshot of a failed backup removed/);
    // the base still serves: the next backup to the good target works
    assert.match(await ok('backup', 'create', vol, '--target', 'good'), /backup=/);
  });

  it('restore into a name that is taken is refused before a job starts', async () => {
    const url = (JSON.parse(await ok('--json', 'backup', 'ls', '--target', 'good')) as Array<{ url: string }>)[0]!.url;
    const jobs = await jobIds();
    const bytes = await volumeBytes();
    const r = await f.cli('backup', 'restore', url, vol);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /a volume named failing exists already/);
    assert.deepEqual(await jobIds(), jobs, 'no job was started');
    assert.equal(await volumeBytes(), bytes);
    const bad = await f.cli('backup', 'restore', url, '../etc');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /volume name/i);
    assert.deepEqual(await jobIds(), jobs, 'no job was started');
  });
});
