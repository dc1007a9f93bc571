/**
 * Image pools (issue 16, item 3) on a real ferryd, through Docker's plugin calls and the CLI: fixed-size ext4 and
 * xfs images attached on the first Mount and detached on the last Unmount, never attached twice (20 Mounts at
 * once), ENOSPC at the image's size, online and offline growth, kill -9 of ferryd while attached, snapshots and
 * clones through the mounted filesystem, the trash and re-create of a name with another size.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { loopFsPrerequisites, makeLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { skipUnless } from '../helpers/prereq.js';
import { fillUntilRefused } from '../helpers/fill.js';
import { fingerprint, populate } from '../helpers/tree.js';
import type { VolumeDetail } from '../../src/wire/types.js';

const MiB = 2 ** 20;
const skip = skipUnless([...new Set([...loopFsPrerequisites('ext4'), ...loopFsPrerequisites('xfs')])], 'image pools (loop devices, ext4 and xfs)');

const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

/** The filesystem mounted exactly at `dir`, from /proc/self/mountinfo. */
async function mountAt(dir: string): Promise<{ fsType: string; source: string } | undefined> {
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [left, right] = line.split(' - ');
    if (left?.split(' ')[4] === dir) {
      const [fsType = '', source = ''] = (right ?? '').split(' ');
      return { fsType, source };
    }
  }
  return undefined;
}

async function loops(image: string): Promise<string[]> {
  const r = await run('losetup', ['-n', '-O', 'NAME', '-j', image]);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

describe('image pools: a fixed-size filesystem per volume, attached while used', { skip }, () => {
  let dir: string;
  let pool: string;
  let reflinkHost: LoopFs | undefined;
  let smallHost: LoopFs | undefined;
  let f: Ferryd;
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const inspect = async (v: string) => JSON.parse(await ok('--json', 'volume', 'inspect', v)) as VolumeDetail;
  const data = (v: string) => join(pool, 'volumes', v, 'data');
  const image = (v: string) => join(pool, 'volumes', v, 'disk.img');
  const mount = async (v: string, id: string) => {
    const r = await f.plugin('Mount', { Name: v, ID: id });
    assert.equal(r.json.Err, '', `Mount ${v} ${id}: ${String(r.json.Err)}`);
    return r.json.Mountpoint as string;
  };
  const unmount = async (v: string, id: string) => assert.equal((await f.plugin('Unmount', { Name: v, ID: id })).json.Err, '');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-image-'));
    pool = join(dir, 'images');
    // a host filesystem with reflinks: snapshots there are frozen, point-in-time copies of the image
    reflinkHost = await makeLoopFs('xfs', 1024);
    // a small host disk, for what a full one does to reserved and to sparse images
    smallHost = await makeLoopFs('ext4', 160);
    await writeFile(join(dir, 'backup.key'), 'correct horse battery staple\n', { mode: 0o600 });
    await writeFile(
      join(dir, 'ferry.yaml'),
      ['pools:', '  img:', '    kind: image', `    path: ${pool}`, '  xfsimg:', '    kind: image', '    fs: xfs', '    defaultSize: 320M', '    allocate: sparse', `    path: ${join(dir, 'xfs-images')}`, '  cow:', '    kind: image', `    path: ${join(reflinkHost.mountpoint, 'images')}`,
        '  thick:', '    kind: image', `    path: ${join(smallHost.mountpoint, 'thick')}`, '  thin:', '    kind: image', '    allocate: sparse', `    path: ${join(smallHost.mountpoint, 'thin')}`,
        'backupTargets:', '  nas:', `    url: file://${join(dir, 'backups')}`, `    passwordFile: ${join(dir, 'backup.key')}`].join('\n'),
    );
    f = await startFerryd({ dir: join(dir, 'ferryd'), extraArgs: ['--config', join(dir, 'ferry.yaml')] });
  });
  after(async () => {
    await f?.destroy();
    // whatever a failed test left mounted: unmount it, which frees its loop device
    for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').reverse()) {
      const mp = line.split(' ')[4];
      if (mp?.startsWith(dir) || (reflinkHost && mp?.startsWith(`${reflinkHost.mountpoint}/`)) || (smallHost && mp?.startsWith(`${smallHost.mountpoint}/`))) await run('umount', ['-l', mp]);
    }
    await reflinkHost?.destroy();
    await smallHost?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses what cannot be made, naming why', async () => {
    const none = await f.cli('volume', 'create', 'nosize', '-o', 'pool=img');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /pool img holds fixed-size images: give a size \(-o size=10G\), or set defaultSize/);
    const fsOnDir = await f.cli('volume', 'create', 'dirfs', '-o', 'fs=xfs');
    assert.equal(fsOnDir.code, 1);
    assert.match(fsOnDir.stderr, /option fs=xfs: pool local is a dir pool; fs= picks the filesystem of an image volume/);
    const badFs = await f.cli('volume', 'create', 'badfs', '-o', 'pool=img', '-o', 'size=64M', '-o', 'fs=ntfs');
    assert.match(badFs.stderr, /option fs="ntfs": expected ext4 or xfs/);
    const tinyXfs = await f.cli('volume', 'create', 'tiny', '-o', 'pool=img', '-o', 'size=64M', '-o', 'fs=xfs');
    assert.match(tinyXfs.stderr, /an xfs image holds at least 300 MiB/);
    for (const v of ['nosize', 'dirfs', 'badfs', 'tiny']) assert.equal((await f.cli('volume', 'inspect', v)).code, 1, `${v} was not made`);
    // ferry status says what enforces sizes in each pool
    const status = await ok('status');
    assert.match(status, /^img\s+image\s+ok\s+hardlink\s[\s\S]*^img: .*\n  sizes: image \(ext4; xfs with -o fs=xfs; space reserved\)$/m);
    assert.match(status, /^xfsimg\s+image\s+ok\s+hardlink\s[\s\S]*^xfsimg: .*\n  sizes: image \(xfs; ext4 with -o fs=ext4; sparse\)$/m);
    assert.match(status, /^local: .*\n  sizes: (btrfs qgroups|none: \w+ without project quotas)$/m);
  });

  it('attaches on the first Mount, detaches on the last Unmount, keeps every byte, and gives ENOSPC at its size', async () => {
    await ok('volume', 'create', 'db', '-o', 'pool=img', '-o', 'size=64M', '-o', 'uid=999', '-o', 'mode=0700');
    const st = await stat(image('db'));
    assert.equal(st.size, 64 * MiB);
    assert.ok(st.blocks * 512 >= 64 * MiB, `its space is reserved on the host's disk (${st.blocks * 512} bytes allocated)`);
    assert.equal(await mountAt(data('db')), undefined, 'not attached before a Mount');
    assert.equal((await inspect('db')).size?.limitBytes, 64 * MiB);

    const mp = await mount('db', 'c1');
    assert.equal(mp, data('db'));
    const m = await mountAt(mp);
    assert.equal(m?.fsType, 'ext4');
    assert.deepEqual(await loops(image('db')), [m!.source]);
    const root = await stat(mp);
    assert.equal(root.uid, 999);
    assert.equal(root.mode & 0o7777, 0o700);
    await writeFile(join(mp, 'keep.bin'), randomBytes(3 * MiB));
    const sum = await sha(join(mp, 'keep.bin'));
    // a second Mount (another container) shares the attach
    await mount('db', 'c2');
    assert.equal((await loops(image('db'))).length, 1);
    await unmount('db', 'c1');
    assert.ok(await mountAt(mp), 'still attached while c2 has it');
    await unmount('db', 'c2');
    assert.equal(await mountAt(mp), undefined, 'detached after the last Unmount');
    assert.deepEqual(await loops(image('db')), [], 'its loop device is free again');

    await mount('db', 'c3');
    assert.equal(await sha(join(mp, 'keep.bin')), sum, 'every byte is back after detach and attach');
    const fsBefore = await statfs(mp);
    const avail = fsBefore.bavail * fsBefore.bsize;
    const full = await fillUntilRefused(join(mp, 'fill'));
    assert.equal(full.code, 'ENOSPC');
    assert.ok(Math.abs(full.written - avail) <= 0.01 * avail, `refused after ${full.written} bytes; the filesystem had ${avail} free`);
    assert.ok(full.written + 3 * MiB <= 64 * MiB);
    const used = (await inspect('db')).size;
    assert.equal(used?.enforcedBytes, 64 * MiB);
    assert.ok(used?.usedBytes !== null && used!.usedBytes! >= full.written + 3 * MiB, `inspect shows ${used?.usedBytes} used`);
    await rm(join(mp, 'fill'));
    assert.equal(await sha(join(mp, 'keep.bin')), sum);
    await unmount('db', 'c3');
  });

  it('a reserved image keeps its blocks: holes punched in it (an fstrim, ext4 zeroing its inode tables) are reserved again at its next attach', async () => {
    const img = image('db');
    const size = (await stat(img)).size;
    const sum = await sha(join(await mount('db', 'c-sum'), 'keep.bin'));
    await unmount('db', 'c-sum');
    // punch out 4 MiB of the image that read as zeros (free blocks), as a discard through its loop device does
    const fh = await open(img, 'r');
    const chunk = Buffer.alloc(MiB);
    const zeroMiBs: number[] = [];
    try {
      for (let at = 0; at < size && zeroMiBs.length < 4; at += MiB) {
        await fh.read(chunk, 0, MiB, at);
        if (chunk.every((b) => b === 0)) zeroMiBs.push(at);
      }
    } finally {
      await fh.close();
    }
    assert.equal(zeroMiBs.length, 4, 'the 64 MiB image has 4 MiB of free blocks that read as zeros');
    const allocated = async () => (await stat(img)).blocks * 512;
    const before = await allocated();
    for (const at of zeroMiBs) await run('fallocate', ['--punch-hole', '--offset', String(at), '--length', String(MiB), img]);
    assert.equal(before - (await allocated()), 4 * MiB, 'the holes are there');
    const mp = await mount('db', 'c-holes');
    const st = await stat(img);
    assert.ok(st.blocks * 512 >= size, `reserved again at the attach (${st.blocks * 512} of ${size} bytes allocated)`);
    assert.equal(await sha(join(mp, 'keep.bin')), sum, 'every byte of the data is there');
    await unmount('db', 'c-holes');
  });

  it('20 Mounts at once attach the image once', async () => {
    await ok('volume', 'create', 'race', '-o', 'pool=img', '-o', 'size=32M');
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const answers = await Promise.all(ids.map((id) => f.plugin('Mount', { Name: 'race', ID: id })));
    for (const a of answers) assert.equal(a.json.Err, '');
    assert.equal((await loops(image('race'))).length, 1, 'one loop device');
    assert.equal((await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === data('race')).length, 1, 'one mount');
    assert.equal((await inspect('race')).mounts, 20);
    await Promise.all(ids.map((id) => unmount('race', id)));
    assert.equal(await mountAt(data('race')), undefined);
    assert.deepEqual(await loops(image('race')), []);
  });

  it('kill -9 of ferryd while attached: after the restart still mounted and counted; one left attached by a crash without a Mount is detached', async () => {
    await ok('volume', 'create', 'crashy', '-o', 'pool=img', '-o', 'size=32M');
    const mp = await mount('crashy', 'k1');
    await writeFile(join(mp, 'x'), 'before the crash');
    await f.crash();
    assert.ok(await mountAt(mp), 'the mount outlives ferryd');
    // an attach without a Mount (as a snapshot's, cut short by a crash)
    await f.start();
    await ok('volume', 'create', 'orphan', '-o', 'pool=img', '-o', 'size=32M');
    await f.stop();
    assert.equal((await run('mount', ['-o', 'loop', image('orphan'), data('orphan')])).code, 0);
    await f.start();
    assert.equal(await mountAt(data('orphan')), undefined, 'detached at start-up: no Docker mount holds it');
    assert.deepEqual(await loops(image('orphan')), []);
    const m = await mountAt(mp);
    assert.ok(m, 'still mounted after the restart');
    assert.deepEqual(await loops(image('crashy')), [m.source], 'and attached once');
    assert.equal((await inspect('crashy')).mounts, 1);
    assert.equal(await readFile(join(mp, 'x'), 'utf8'), 'before the crash');
    await unmount('crashy', 'k1');
    assert.equal(await mountAt(mp), undefined);
  });

  it('a full host disk: reserved images refuse the create that does not fit and fill to their own size; a sparse one fails its writer early', async () => {
    const thick = join(smallHost!.mountpoint, 'thick', 'volumes');
    await ok('volume', 'create', 't1', '-o', 'pool=thick', '-o', 'size=64M');
    await ok('volume', 'create', 't2', '-o', 'pool=thick', '-o', 'size=64M');
    const third = await f.cli('volume', 'create', 't3', '-o', 'pool=thick', '-o', 'size=64M');
    assert.equal(third.code, 1, 'a third 64 MiB image does not fit on the 160 MiB disk');
    assert.match(third.stderr, /no space left on thick \(\d+ bytes free; a new image of 64 MiB, reserved whole, is needed\): creating volume t3 failed and nothing was kept/);
    assert.equal((await f.cli('volume', 'inspect', 't3')).code, 1);
    assert.deepEqual((await readdir(thick)).sort(), ['t1', 't2'], 'no half-made image left behind');
    // a reserved volume on the full disk fills to its own size: ENOSPC of its filesystem, never an I/O error
    const mp = await mount('t1', 'full1');
    await writeFile(join(mp, 'keep'), 'kept');
    const full = await fillUntilRefused(join(mp, 'fill'));
    assert.equal(full.code, 'ENOSPC');
    assert.ok(full.written > 50 * MiB, `wrote ${full.written} bytes into a 64 MiB image`);
    await rm(join(mp, 'fill'));
    assert.equal(await readFile(join(mp, 'keep'), 'utf8'), 'kept');
    await unmount('t1', 'full1');
    // a sparse image promises what the disk no longer has: its writer fails long before the image's size
    await ok('volume', 'create', 's1', '-o', 'pool=thin', '-o', 'size=64M');
    const mps = await mount('s1', 'thin1');
    const over = await fillUntilRefused(join(mps, 'fill'));
    assert.ok(over.code === 'EIO' || over.code === 'ENOSPC' || over.code === 'EROFS', `the sparse image's writer got ${over.code}`);
    assert.ok(over.written < 40 * MiB, `it stopped at ${over.written} bytes, where the host's disk was full`);
    await unmount('s1', 'thin1');
    await ok('volume', 'rm', 's1', 't1', 't2');
  });

  it('a volume whose record was lost or cannot be read is adopted with its size, and its data mounts as before', async () => {
    await ok('volume', 'create', 'lost', '-o', 'pool=img', '-o', 'size=48M');
    await ok('volume', 'create', 'garbled', '-o', 'pool=img', '-o', 'size=40M');
    for (const v of ['lost', 'garbled']) {
      await writeFile(join(await mount(v, `r-${v}`), 'kept'), v);
      await unmount(v, `r-${v}`);
    }
    await f.stop();
    await rm(join(f.dataDir, 'catalog', 'volumes', 'lost.json'));
    await writeFile(join(f.dataDir, 'catalog', 'volumes', 'garbled.json'), '{"name": "garbled", "pool": "im');
    await f.start();
    for (const [v, size] of [['lost', 48 * MiB], ['garbled', 40 * MiB]] as const) {
      const d = await inspect(v);
      assert.equal(d.labels['ferry.recovered'], 'true', `${v} was adopted`);
      assert.equal(d.size?.limitBytes, size, `${v} keeps its size in the rebuilt record`);
      assert.equal(await readFile(join(await mount(v, `r2-${v}`), 'kept'), 'utf8'), v);
      await unmount(v, `r2-${v}`);
    }
    await ok('volume', 'rm', 'lost', 'garbled');
  });

  it('grows online while a writer writes (xfs; ext4 where ferryd may resize online), grows offline, never shrinks', async () => {
    await ok('volume', 'create', 'grow', '-o', 'pool=img', '-o', 'size=32M');
    const mp = await mount('grow', 'g1');
    await writeFile(join(mp, 'stream'), randomBytes(4 * MiB));
    const sum = await sha(join(mp, 'stream'));
    const online = await f.cli('volume', 'resize', 'grow', '96M');
    const capResource = ((BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(await readFile('/proc/self/status', 'utf8'))![1]}`) >> 24n) & 1n) === 1n;
    if (capResource) {
      assert.equal(online.code, 0, online.stderr);
      const s = await statfs(mp);
      assert.ok(s.blocks * s.bsize > 80 * MiB, `the mounted filesystem grew to ${s.blocks * s.bsize}`);
    } else {
      // this machine's root lacks CAP_SYS_RESOURCE, which the kernel's online ext4 resize needs: refused, nothing changed
      assert.equal(online.code, 1);
      assert.match(online.stderr, /an ext4 image grows while mounted only with CAP_SYS_RESOURCE .* resize it then \(offline\), or use fs=xfs, which grows online/);
      assert.equal((await stat(image('grow'))).size, 32 * MiB);
      assert.equal((await inspect('grow')).size?.limitBytes, 32 * MiB);
    }
    await unmount('grow', 'g1');
    await ok('volume', 'resize', 'grow', '128M'); // offline
    assert.equal((await stat(image('grow'))).size, 128 * MiB);
    await mount('grow', 'g2');
    const s2 = await statfs(mp);
    assert.ok(s2.blocks * s2.bsize > 110 * MiB, `grew offline to ${s2.blocks * s2.bsize}`);
    assert.equal(await sha(join(mp, 'stream')), sum);
    await unmount('grow', 'g2');
    const shrink = await f.cli('volume', 'resize', 'grow', '64M');
    assert.equal(shrink.code, 1);
    assert.match(shrink.stderr, /images grow only/);
    assert.equal((await inspect('grow')).size?.limitBytes, 128 * MiB);

    await ok('volume', 'create', 'xv', '-o', 'pool=xfsimg'); // the pool's defaultSize
    assert.equal((await inspect('xv')).size?.limitBytes, 320 * MiB);
    const xm = await mount('xv', 'x1');
    assert.equal((await mountAt(xm))?.fsType, 'xfs');
    await writeFile(join(xm, 'f'), 'xfs data');
    const small = await statfs(xm);
    // a writer goes on while the filesystem grows under it
    const fh = await open(join(xm, 'stream'), 'a');
    let writing = true;
    let written = 0;
    const writer = (async () => {
      const chunk = randomBytes(256 * 1024);
      while (writing && written < 64 * MiB) {
        await fh.write(chunk);
        written += chunk.length;
      }
      await fh.sync();
    })();
    await ok('volume', 'resize', 'xv', '400M');
    writing = false;
    await writer;
    await fh.close();
    const grown = await statfs(xm);
    assert.ok((grown.blocks - small.blocks) * grown.bsize >= 76 * MiB, `xfs grew online from ${small.blocks * small.bsize} to ${grown.blocks * grown.bsize}`);
    assert.equal((await stat(join(xm, 'stream'))).size, written, 'the writer lost nothing');
    assert.ok(written > 0);
    await unmount('xv', 'x1');
    await ok('volume', 'resize', 'xv', '480M'); // offline: attached for the grow
    assert.equal(await mountAt(xm), undefined);
    await mount('xv', 'x2');
    const xs = await statfs(xm);
    assert.ok((xs.blocks - grown.blocks) * xs.bsize >= 76 * MiB, `xfs grew offline to ${xs.blocks * xs.bsize}`);
    assert.equal(await readFile(join(xm, 'f'), 'utf8'), 'xfs data');
    await unmount('xv', 'x2');
  });

  it('restores a backup into a new image, beside the lost+found of its filesystem, from an image volume or a directory volume', async () => {
    await ok('backup', 'init', '--target', 'nas');
    await ok('volume', 'create', 'bk', '-o', 'pool=img', '-o', 'size=48M', '-o', 'mode=0750');
    const mp = await mount('bk', 'b1');
    populate(mp, 120);
    const want = fingerprint(mp);
    assert.ok(want['lost+found'], 'the image volume has the lost+found of its ext4');
    await unmount('bk', 'b1');
    const url = (await ok('backup', 'create', 'bk', '--target', 'nas')).trim();
    // times come back to the microsecond (docs/backup-format.md); the top directory and lost+found are the new
    // filesystem's own, with their times (a clone's are too)
    const us = (fp: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(fp).map(([k, v]) => [k, { ...(v as object), mtime: k === '.' || k === 'lost+found' ? '' : String((v as { mtime?: string }).mtime ?? '').slice(0, -3) }]));
    const check = async (v: string) => {
      const back = await mount(v, `${v}-check`);
      assert.deepEqual(us(fingerprint(back)), us(want), `${v}: the backup, byte for byte, with modes and owners`);
      assert.equal((await stat(back)).mode & 0o7777, 0o750, `${v}: the volume's own mode`);
      await unmount(v, `${v}-check`);
    };
    // as Docker does with `docker volume create -d ferry -o pool=img -o backup=URL`
    const created = await f.plugin('Create', { Name: 'bk-copy', Opts: { pool: 'img', size: '48M', backup: url } });
    assert.equal(created.json.Err, '', created.text);
    await check('bk-copy');
    // and as a job of the CLI
    await ok('backup', 'restore', url, 'bk-job', '-o', 'pool=img', '-o', 'size=48M');
    await check('bk-job');
    // a directory volume's backup (no lost+found of its own) into an image
    await ok('volume', 'create', 'plain');
    populate(join(f.dataDir, 'volumes', 'plain', 'data'), 40);
    const plainWant = fingerprint(join(f.dataDir, 'volumes', 'plain', 'data'));
    const plainUrl = (await ok('backup', 'create', 'plain', '--target', 'nas')).trim();
    await ok('backup', 'restore', plainUrl, 'plain-img', '-o', 'pool=img', '-o', 'size=32M');
    const pm = await mount('plain-img', 'p1');
    const got = fingerprint(pm);
    assert.ok(got['lost+found'], 'the new image keeps its own lost+found');
    delete got['lost+found'];
    assert.deepEqual(us(got), us(plainWant));
    await unmount('plain-img', 'p1');
  });

  it('snapshots (mounted or not), clones into new images, restores (all or nothing under kill -9), the trash, re-create with another size', async () => {
    await ok('volume', 'create', 'snap', '-o', 'pool=img', '-o', 'size=48M');
    const mp = await mount('snap', 's1');
    await writeFile(join(mp, 'a'), randomBytes(2 * MiB));
    const a = await sha(join(mp, 'a'));
    await ok('snapshot', 'create', 'snap', '--name', 'one'); // mounted by a container
    await writeFile(join(mp, 'a'), 'changed');
    await unmount('snap', 's1');
    await ok('snapshot', 'create', 'snap', '--name', 'two'); // attached for the copy only
    assert.equal(await mountAt(mp), undefined, 'detached again after the snapshot');
    await ok('volume', 'create', 'copy', '-o', 'from=snap@one', '-o', 'size=40M');
    const cm = await mount('copy', 'c1');
    assert.equal(await sha(join(cm, 'a')), a, 'the clone holds the snapshot, byte for byte');
    assert.equal((await stat(image('copy'))).size, 40 * MiB);
    await unmount('copy', 'c1');
    // a clone into an image smaller than the snapshot's data: the image is what is full, not the pool
    const tiny = await f.cli('volume', 'create', 'tiny', '-o', 'from=snap@one', '-o', 'size=1M');
    assert.equal(tiny.code, 1);
    assert.match(tiny.stderr, /the new image's filesystem \(\S+ \S+ for files\) filled up while the data was copied in: the data is larger than the size the volume was given; nothing was kept: ask for a larger size \(-o size=\)/);
    assert.doesNotMatch(tiny.stderr, /free space on/);
    assert.equal((await f.cli('volume', 'inspect', 'tiny')).code, 1);
    assert.ok(!(await readdir(join(pool, 'volumes'))).includes('tiny'), 'nothing of it is left');
    // restore: a new image of the same size filled with the snapshot, renamed over the old one
    await ok('snapshot', 'restore', 'snap', 'one');
    assert.equal((await stat(image('snap'))).size, 48 * MiB);
    assert.deepEqual(await readdir(join(pool, 'volumes', 'snap')).then((es) => es.filter((e) => /new|restore/.test(e))), [], 'nothing of the restore is left');
    let back = await mount('snap', 'r1');
    assert.equal(await sha(join(back, 'a')), a, 'the snapshot, byte for byte');
    await writeFile(join(back, 'a'), 'changed');
    // refused while mounted (the container must stop first, or --restart-containers with Docker)
    const busyRestore = await f.cli('snapshot', 'restore', 'snap', 'one');
    assert.equal(busyRestore.code, 1);
    assert.match(busyRestore.stderr, /in use/);
    await unmount('snap', 'r1');
    // a restore cut short by kill -9 (its new image mounted and half filled): the old data stays, start-up clears the rest
    await f.crash();
    const mnt = join(pool, 'volumes', 'snap', 'restore-mnt');
    await run('mkdir', [mnt]);
    await run('truncate', ['-s', '48M', `${image('snap')}.new`]);
    assert.equal((await run('mkfs.ext4', ['-q', '-F', `${image('snap')}.new`])).code, 0);
    assert.equal((await run('mount', ['-o', 'loop', `${image('snap')}.new`, mnt])).code, 0);
    await writeFile(join(mnt, 'half'), 'half a restore');
    await f.start();
    assert.equal(await mountAt(mnt), undefined);
    assert.deepEqual(await readdir(join(pool, 'volumes', 'snap')).then((es) => es.filter((e) => /new|restore/.test(e))), [], 'start-up removed the cut-short restore');
    back = await mount('snap', 'r2');
    assert.equal(await readFile(join(back, 'a'), 'utf8'), 'changed', 'the live data as it was before the cut-short restore');
    await unmount('snap', 'r2');

    const busy = await mount('snap', 's2');
    const rmBusy = await f.cli('volume', 'rm', 'snap');
    assert.equal(rmBusy.code, 1);
    assert.ok(await mountAt(busy), 'a refused removal leaves it attached');
    await unmount('snap', 's2');
    await ok('volume', 'rm', 'snap');
    await ok('volume', 'undelete', 'snap');
    const again = await mount('snap', 's3');
    assert.equal(await readFile(join(again, 'a'), 'utf8'), 'changed');
    await unmount('snap', 's3');
    // Docker's way of changing a size: Remove, then Create with another (moby#43891: the old limit must not stick)
    assert.equal((await f.plugin('Remove', { Name: 'snap' })).json.Err, '');
    assert.equal((await f.plugin('Create', { Name: 'snap', Opts: { pool: 'img', size: '80M' } })).json.Err, '');
    assert.equal((await stat(image('snap'))).size, 80 * MiB);
    const fresh = await mount('snap', 's4');
    assert.deepEqual((await readdir(fresh)).filter((e) => e !== 'lost+found'), [], 'a new, empty filesystem');
    await unmount('snap', 's4');
    await ok('volume', 'rm', '--purge', 'snap', 'copy');
    await ok('trash', 'purge', '--all');
  });
  it('a clone killed while its image is mounted to be filled: doctor says so (not "adopt"), start-up detaches the image and removes the clone', async () => {
    await ok('volume', 'create', 'src9', '-o', 'pool=img', '-o', 'size=16M');
    const sm = await mount('src9', 'k9');
    await writeFile(join(sm, 'f'), randomBytes(MiB));
    const sum = await sha(join(sm, 'f'));
    await unmount('src9', 'k9');
    await ok('snapshot', 'create', 'src9', '--name', 's');
    await f.stop();
    const said = join(dir, 'paused-at');
    const g = await startFerryd({ dir: join(dir, 'ferryd'), extraArgs: ['--config', join(dir, 'ferry.yaml')], env: { FERRY_TEST_PAUSE: 'image-filled-attached:30000', FERRY_TEST_PAUSE_FILE: said } });
    try {
      const cloning = g.cli('volume', 'create', 'cut9', '-o', 'from=src9@s', '-o', 'size=16M');
      const deadline = Date.now() + 30_000;
      while (!(await readFile(said, 'utf8').catch(() => '')).includes('image-filled-attached')) {
        assert.ok(Date.now() < deadline, 'ferryd did not reach the pause');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(await mountAt(data('cut9')), "the clone's image is mounted while it fills");
      const doctor = (await g.cli('--json', 'doctor')).stdout;
      assert.match(doctor, /volumes\/cut9 has no catalog record: a restore or clone is filling it now/);
      assert.doesNotMatch(doctor, /adopt it as a volume/);
      await g.crash();
      await cloning;
      assert.ok(await mountAt(data('cut9')), 'the crash left it mounted');
    } finally {
      await g.destroy().catch(() => undefined);
    }
    await f.start();
    assert.equal(await mountAt(data('cut9')), undefined, 'start-up detached it');
    assert.deepEqual(await loops(image('cut9')), []);
    assert.ok(!(await readdir(join(pool, 'volumes'))).includes('cut9'), 'and removed the partial clone at once, not at the next start');
    assert.equal((await f.cli('volume', 'inspect', 'cut9')).code, 1);
    await ok('volume', 'create', 'cut9', '-o', 'from=src9@s', '-o', 'size=16M');
    assert.equal(await sha(join(await mount('cut9', 'k10'), 'f')), sum, 'run again, the clone is whole');
    await unmount('cut9', 'k10');
    await ok('volume', 'rm', '--purge', 'cut9', 'src9');
  });

  it('on a host filesystem with reflinks, a snapshot of a volume in use is one instant: the filesystem frozen for a reflink copy of its image', async () => {
    const cow = join(reflinkHost!.mountpoint, 'images', 'volumes');
    await ok('volume', 'create', 'pit', '-o', 'pool=cow', '-o', 'size=64M');
    const mp = await mount('pit', 'p1');
    await writeFile(join(mp, 'before'), randomBytes(MiB));
    const before = await sha(join(mp, 'before'));
    // a writer appends a counter to two files, one after the other, while the snapshot is taken
    let writing = true;
    let n = 0;
    const writer = (async () => {
      const a = await open(join(mp, 'a'), 'a');
      const b = await open(join(mp, 'b'), 'a');
      while (writing) {
        n++;
        await a.write(`${n}\n`);
        await b.write(`${n}\n`);
        if (n % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await a.close();
      await b.close();
    })();
    await new Promise((r) => setTimeout(r, 200));
    await ok('snapshot', 'create', 'pit', '--name', 'instant');
    writing = false;
    await writer;
    assert.match(await f.logs(), /"volume":"pit".*"pointInTime":true.*"msg":"snapshot created"/);
    // nothing of the copy is left: no extra loop device or mount, no file
    assert.deepEqual((await readdir(join(cow, 'pit'))).filter((e) => e.startsWith('.snap-view')), []);
    assert.equal((await loops(join(cow, 'pit', 'disk.img'))).length, 1);
    assert.ok(await mountAt(mp), 'the volume stays mounted for its container');
    await writeFile(join(mp, 'before'), 'changed after the snapshot');
    await unmount('pit', 'p1');
    // its clone holds the instant: the file as it was, and both counters written up to the same line or one apart
    await ok('volume', 'create', 'pit-copy', '-o', 'from=pit@instant', '-o', 'pool=cow', '-o', 'size=64M');
    const cm = await mount('pit-copy', 'c1');
    assert.equal(await sha(join(cm, 'before')), before);
    const lastOf = async (f: string) => Number((await readFile(join(cm, f), 'utf8')).trim().split('\n').pop() ?? 0);
    const [la, lb] = [await lastOf('a'), await lastOf('b')];
    assert.ok(la - lb === 0 || la - lb === 1, `counters ${la} and ${lb}: one instant`);
    assert.ok(la > 0 && la < n, `a counter from the middle of the writing (${la} of ${n})`);
    await unmount('pit-copy', 'c1');

    // a snapshot's copy cut short by kill -9 (still mounted): start-up unmounts and removes it
    const mp2 = await mount('pit', 'p2');
    await f.crash();
    const snapImg = join(cow, 'pit', '.snap-view-dead.img');
    await run('cp', ['--reflink=always', join(cow, 'pit', 'disk.img'), snapImg]);
    await run('mkdir', [join(cow, 'pit', '.snap-view-dead')]);
    assert.equal((await run('mount', ['-o', 'loop,ro,noload', snapImg, join(cow, 'pit', '.snap-view-dead')])).code, 0);
    await f.start();
    assert.deepEqual((await readdir(join(cow, 'pit'))).filter((e) => e.startsWith('.snap-view')), []);
    assert.deepEqual(await loops(snapImg), []);
    assert.ok(await mountAt(mp2), 'the Docker mount is still there');
    await unmount('pit', 'p2');
    await ok('volume', 'rm', '--purge', 'pit', 'pit-copy');
  });
});
