import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, fsyncSync, readFileSync, writeFileSync, readdirSync, mkdirSync, symlinkSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { makeLoopFs, loopFsPrerequisites, type LoopFs } from '../helpers/loopfs.js';
import { skipUnless } from '../helpers/prereq.js';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { makeDirs } from '../../src/util/make-dirs.js';
import { FileTarget } from '../../src/backup/file-target.js';
import { FerryError } from '../../src/util/errors.js';

/**
 * A data dir (and so the local pool and the mount journal) on an 8 MiB ext4 filled to the last block:
 * every operation that needs space fails with `no space left on ...`, nothing half-made is listed, a
 * restart lists the same, and once space is freed every operation works and the data reads back.
 */
const skip = skipUnless(loopFsPrerequisites('ext4'), 'full disk');
const NO_SPACE = /no space left on (local|the data dir \S+) \(\d+ bytes free\)/;

/** Write until the filesystem refuses even one more byte. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  try {
    for (const size of [1 << 20, 1 << 16, 1 << 12, 1 << 10, 1]) {
      const buf = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          writeSync(fd, buf);
        } catch {
          break;
        }
      }
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

describe('a full disk', { skip }, () => {
  let base: string;
  let fs: LoopFs;
  let f: Ferryd;
  const data = (v: string) => join(f.dataDir, 'volumes', v, 'data');
  const cliOk = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const refused = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 1, `ferry ${args.join(' ')} should fail: ${r.stdout}`);
    assert.match(r.stderr, NO_SPACE, `ferry ${args.join(' ')}`);
  };
  const listing = async () => ({
    volumes: JSON.parse(await cliOk('--json', 'volume', 'ls')).map((v: { name: string }) => v.name).sort(),
    trash: JSON.parse(await cliOk('--json', 'trash', 'ls')).map((t: { name: string }) => t.name).sort(),
    snapshots: JSON.parse(await cliOk('--json', 'snapshot', 'ls', 'vol')).map((s: { name: string }) => s.name).sort(),
  });

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-full-'));
    fs = await makeLoopFs('ext4', 8);
    mkdirSync(join(base, 'node'));
    symlinkSync(fs.mountpoint, join(base, 'node', 'data')); // the data dir only: ferryd's log stays writable
    // a backup target off the full disk, for the restore from a backup
    writeFileSync(join(base, 'secret'), 'full-disk-test-secret');
    writeFileSync(join(base, 'ferry.yaml'), ['backupTargets:', '  nas:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'secret')}`].join('\n'));
    f = await startFerryd({ dir: join(base, 'node'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
  });
  after(async () => {
    await f?.destroy();
    await fs?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('refuses with no_space, keeps nothing half-made, and works again once space is freed', async () => {
    const content = Buffer.alloc(300_000, 7);
    await cliOk('volume', 'create', 'vol');
    writeFileSync(join(data('vol'), 'big'), content);
    await cliOk('snapshot', 'create', 'vol', '--name', 'before');
    await cliOk('volume', 'create', 'gone');
    writeFileSync(join(data('gone'), 'file'), 'in the trash');
    await cliOk('volume', 'rm', 'gone');
    await cliOk('backup', 'init', '--target', 'nas');
    const url = (await cliOk('backup', 'create', 'vol', '--target', 'nas')).trim();
    const before = await listing();

    const filler = join(fs.mountpoint, 'filler');
    fill(filler);
    await refused('volume', 'create', 'new');
    await refused('snapshot', 'create', 'vol', '--name', 'full');
    await refused('volume', 'create', 'copy', '-o', 'from=vol@before');
    const restored = await f.plugin('Create', { Name: 'fromb', Opts: { backup: url } }); // as Docker would
    assert.match(restored.json.Err, NO_SPACE, restored.text);
    writeFileSync(join(data('vol'), 'big'), ''); // (truncating frees blocks: fill again)
    fill(`${filler}2`);
    await refused('snapshot', 'restore', 'vol', 'before');
    await refused('volume', 'undelete', 'gone');
    const m = await f.plugin('Mount', { Name: 'vol', ID: 'feed0001' });
    assert.match(m.json.Err, NO_SPACE, m.text);
    assert.deepEqual(await listing(), before, 'nothing half-made is listed');
    assert.equal(JSON.parse(await cliOk('--json', 'volume', 'inspect', 'vol')).mounts, 0);
    assert.deepEqual(readdirSync(join(f.dataDir, 'volumes')).sort(), ['vol']);
    assert.ok(!readdirSync(join(f.dataDir, 'volumes', 'vol', 'snapshots')).some((e) => e.startsWith('.tmp-')), 'temp trees removed');
    assert.ok(!readdirSync(join(f.dataDir, 'volumes', 'vol')).includes('data.new'), 'the restore copy removed');
    assert.ok(!readdirSync(join(f.dataDir, 'volumes', 'vol')).includes('data.stage'), 'the staged copies of a restore in place removed');

    // the catalog is intact: a restart (on the full disk) lists the same
    await f.stop();
    await f.start();
    assert.deepEqual(await listing(), before);

    rmSync(filler);
    rmSync(`${filler}2`);
    await cliOk('snapshot', 'restore', 'vol', 'before');
    assert.deepEqual(readFileSync(join(data('vol'), 'big')), content);
    await cliOk('snapshot', 'create', 'vol', '--name', 'after');
    await cliOk('volume', 'create', 'copy', '-o', 'from=vol@after');
    assert.deepEqual(readFileSync(join(data('copy'), 'big')), content);
    await cliOk('volume', 'create', 'new');
    assert.equal((await f.plugin('Create', { Name: 'fromb', Opts: { backup: url } })).json.Err, '');
    assert.deepEqual(readFileSync(join(data('fromb'), 'big')), content);
    await cliOk('volume', 'undelete', 'gone');
    assert.equal(readFileSync(join(data('gone'), 'file'), 'utf8'), 'in the trash');
    const ok = await f.plugin('Mount', { Name: 'vol', ID: 'feed0002' });
    assert.equal(ok.json.Err, '', ok.text);
    assert.equal(JSON.parse(await cliOk('--json', 'volume', 'inspect', 'vol')).mounts, 1);
    assert.equal((await f.plugin('Unmount', { Name: 'vol', ID: 'feed0002' })).json.Err, '');
  });
});

describe('an atomic write in parts (a backup pack) on a disk that fills up mid-way', { skip }, () => {
  it('fails with ENOSPC and leaves neither the file nor its temporary; parts that fit are written whole', async () => {
    const fs = await makeLoopFs('ext4', 8);
    try {
      const parts = Array.from({ length: 300 }, (_, i) => Buffer.alloc(16 * 1024, i % 251));
      // parts that fit: the file is their concatenation
      await writeFileAtomic(join(fs.mountpoint, 'fits'), parts.slice(0, 128));
      assert.ok(readFileSync(join(fs.mountpoint, 'fits')).equals(Buffer.concat(parts.slice(0, 128))));
      fill(join(fs.mountpoint, 'filler'));
      // 2 MiB free again (once the removal is committed), less than the 4.7 MiB below: the kernel takes 2 MiB
      // of the writev, libuv reports those and drops the ENOSPC of the write after
      rmSync(join(fs.mountpoint, 'fits'));
      execFileSync('sync', ['-f', fs.mountpoint]);
      await assert.rejects(writeFileAtomic(join(fs.mountpoint, 'pack'), parts), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
      assert.deepEqual(readdirSync(fs.mountpoint).filter((n) => n !== 'lost+found' && n !== 'filler'), [], 'no pack, no temporary file');
    } finally {
      await fs.destroy();
    }
  });
});

describe('a directory made on a full disk', { skip }, () => {
  it('fails as a full disk (ENOSPC, no_space), not as "does not exist": a backup pack in a new folder of a full target', async () => {
    const fs = await makeLoopFs('ext4', 8);
    try {
      mkdirSync(join(fs.mountpoint, 'repo', 'data'), { recursive: true });
      fill(join(fs.mountpoint, 'filler'));
      // (Node 20's own recursive mkdir rejects here with ENOENT: it stats the directory it could not make)
      await assert.rejects(makeDirs(join(fs.mountpoint, 'a', 'b', 'c')), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
      const target = new FileTarget(join(fs.mountpoint, 'repo'));
      await assert.rejects(target.put('data/ec/ec9596ce', Buffer.alloc(100, 1)), (e: unknown) => e instanceof FerryError && e.code === 'no_space' && /is full \(ENOSPC\) while writing data\/ec\/ec9596ce/.test(e.message));
      assert.deepEqual(readdirSync(join(fs.mountpoint, 'repo', 'data')), [], 'no folder, no pack');
      // an existing directory is no error, full disk or not
      await makeDirs(join(fs.mountpoint, 'repo', 'data'));
    } finally {
      await fs.destroy();
    }
  });
});
