import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { checkVolumeName } from '../../src/volumes/names.js';
import { ACCEPTED_OPTIONS, parseVolumeOptions } from '../../src/daemon/volume-options.js';
import { VOLUME_OPTION_NAMES } from '../../src/wire/volume-options.js';
import { parseDuration } from '../../src/util/duration.js';
import { KeyedLock } from '../../src/util/keyed-lock.js';
import { fsyncDir, keepDirOpen, writeJsonAtomic } from '../../src/util/atomic.js';
import { Catalog, type VolumeRecord } from '../../src/catalog/catalog.js';
import { table, bytes, ago } from '../../src/cli/format.js';

describe('volume names', () => {
  it('accepts Docker\'s names', () => {
    for (const n of ['db', 'db-data', 'a.b_c-d', '0x', 'X'.repeat(128)]) assert.equal(checkVolumeName(n), n);
  });
  it('refuses path tricks, empty, short and overlong names', () => {
    for (const n of ['../../etc', 'a/b', '/abs', '', 'a', '.x', '-x', '_x', 'a b', 'a\nb', 'é1', 'X'.repeat(129), undefined, 7, null]) {
      assert.throws(() => checkVolumeName(n), (e: Error & { code?: string }) => e.code === 'invalid', `accepted ${JSON.stringify(n)}`);
    }
  });
});

describe('volume options', () => {
  it('parses known options', () => {
    assert.deepEqual(parseVolumeOptions({ uid: '1000', gid: '50', mode: '1777', pool: 'local' }), { uid: 1000, gid: 50, mode: 0o1777, pool: 'local' });
    assert.deepEqual(parseVolumeOptions(undefined), {});
  });
  it('refuses unknown keys naming the accepted ones, and bad values', () => {
    assert.throws(() => parseVolumeOptions({ quota: '1G' }), /unknown volume option "quota"; accepted options: access, backup, backup-keep, backup-keep-base, backup-schedule, backup-target, from, fs, gid, mode, pool, size, snapshot-keep, snapshot-schedule, uid/);
    assert.throws(() => parseVolumeOptions({ uid: '-1' }), /uid="-1": expected a number/);
    assert.throws(() => parseVolumeOptions({ mode: '999' }), /octal/);
    assert.throws(() => parseVolumeOptions(['x']), /must be an object/);
    assert.throws(() => parseVolumeOptions({ pool: '../x' }), /not a pool name/);
  });
  it('the names the CLI shows without loading the parsers are the ones the parsers take', () => {
    assert.deepEqual([...VOLUME_OPTION_NAMES], [...ACCEPTED_OPTIONS]);
  });
});

describe('durations', () => {
  it('parses', () => {
    assert.equal(parseDuration('24h'), 86_400_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.throws(() => parseDuration('soon'), /is not a duration/);
    assert.throws(() => parseDuration('5 h'), /is not a duration/);
  });
});

describe('keyed lock', () => {
  it('serialises one key and runs different keys in parallel', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const a1 = lock.run('a', async () => { order.push('a1 start'); await sleep(30); order.push('a1 end'); });
    const a2 = lock.run('a', async () => { order.push('a2 start'); order.push('a2 end'); });
    const b1 = lock.run('b', async () => { order.push('b1 start'); await sleep(5); order.push('b1 end'); });
    await Promise.all([a1, a2, b1]);
    assert.ok(order.indexOf('a1 end') < order.indexOf('a2 start'), order.join(', '));
    assert.ok(order.indexOf('b1 end') < order.indexOf('a1 end'), 'b did not wait for a');
    assert.equal(lock.size, 0);
  });
  it('releases the key when the work throws', async () => {
    const lock = new KeyedLock();
    await assert.rejects(lock.run('k', async () => { throw new Error('boom'); }), /boom/);
    assert.equal(await lock.run('k', async () => 5), 5);
  });
});

describe('atomic catalog writes', () => {
  it('leaves no temporary files and coalesces concurrent saves of one record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-unit-'));
    try {
      await writeJsonAtomic(join(dir, 'x.json'), { a: 1 });
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'x.json'), 'utf8')), { a: 1 });
      const cat = new Catalog(dir);
      await cat.load();
      const rec = (n: number): VolumeRecord => ({ name: 'v1', pool: 'local', createdAt: 't', node: 'n', options: {}, labels: {}, mounts: Object.fromEntries(Array.from({ length: n }, (_, i) => [`m${i}`, { since: 't' }])) });
      await Promise.all(Array.from({ length: 50 }, (_, i) => cat.volumes.save('v1', rec(i + 1))));
      const onDisk = JSON.parse(readFileSync(join(dir, 'volumes', 'v1.json'), 'utf8')) as VolumeRecord;
      assert.equal(Object.keys(onDisk.mounts).length, 50, 'the last state is what is on disk');
      assert.deepEqual(readdirSync(join(dir, 'volumes')), ['v1.json']);
      await cat.volumes.save('v1', undefined);
      assert.deepEqual(readdirSync(join(dir, 'volumes')), []);
      const again = new Catalog(dir);
      await again.load();
      assert.equal(again.volumes.size, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stamps each volume with the version of its last change, and counts the set of names apart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-unit-'));
    try {
      const cat = new Catalog(dir);
      await cat.load();
      const rec = (name: string): VolumeRecord => ({ name, pool: 'local', createdAt: 't', node: 'n', options: {}, labels: {}, mounts: {} });
      const keys0 = cat.volumes.keysVersion;
      await cat.volumes.save('a', rec('a'));
      await cat.volumes.save('b', rec('b'));
      const a1 = cat.stampOf('a');
      const b1 = cat.stampOf('b');
      assert.ok(a1 > 0 && b1 > a1 && cat.version >= b1, `${a1} ${b1} ${cat.version}`);
      assert.equal(cat.volumes.keysVersion, keys0 + 2, 'two names came');
      // a Mount (in place, through the journal) moves that volume's stamp only, and not the names' version
      const keys1 = cat.volumes.keysVersion;
      await cat.changeMount(cat.volumes.get('a')!, 'm1', '+', 't2');
      assert.ok(cat.stampOf('a') > b1, 'a changed');
      assert.equal(cat.stampOf('b'), b1, 'b did not');
      assert.equal(cat.volumes.keysVersion, keys1);
      // a save of a changed record (same name) likewise; a trash record moves neither
      const a2 = cat.stampOf('a');
      await cat.volumes.save('a', { ...rec('a'), labels: { x: 'y' } });
      assert.ok(cat.stampOf('a') > a2);
      assert.equal(cat.volumes.keysVersion, keys1);
      const a3 = cat.stampOf('a');
      await cat.trash.save('a@1700000000000', { id: 'a@1700000000000', removedAt: 't', expiresAt: 't', volume: rec('a') });
      assert.equal(cat.stampOf('a'), a3);
      assert.equal(cat.stampOf('b'), b1);
      // a removal: the name goes (stamp 0), and comes back with a stamp above everything before
      const before = cat.version;
      await cat.volumes.save('b', undefined);
      assert.equal(cat.stampOf('b'), 0);
      assert.equal(cat.volumes.keysVersion, keys1 + 1);
      await cat.volumes.save('b', rec('b'));
      assert.ok(cat.stampOf('b') > before);
      // loading is a change of every record: nothing made before a restart is taken for current
      const again = new Catalog(dir);
      await again.load();
      assert.ok(again.stampOf('a') > 0 && again.stampOf('b') > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CLI formatting', () => {
  it('formats tables, sizes and dates for people', () => {
    assert.equal(table(['NAME', 'POOL'], [['a', 'local'], ['long-name', 'x']]), 'NAME        POOL\na           local\nlong-name   x');
    assert.equal(bytes(512), '512 B');
    assert.equal(bytes(1536), '1.5 KiB');
    assert.equal(bytes(5 * 1024 ** 3), '5.0 GiB');
    const now = Date.parse('2026-01-02T00:00:00Z');
    assert.equal(ago('2026-01-01T23:57:00Z', now), '3 minutes ago');
    assert.equal(ago('2026-01-02T23:00:00Z', now), 'in 23 hours');
  });
});

describe('directory flushes through kept handles', () => {
  it('flush kept directories while older handles are closed to make room, and fail as before for a directory that is not there', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-unit-'));
    try {
      const dirs = Array.from({ length: 100 }, (_, i) => join(root, `d${i}`));
      for (const d of dirs) mkdirSync(d);
      // more kept directories than handles are kept, each flushed while the next ones push the oldest out
      const flushes: Array<Promise<void>> = [];
      for (const d of dirs) {
        keepDirOpen(d);
        flushes.push(fsyncDir(d), fsyncDir(dirs[0]!));
      }
      await Promise.all(flushes);
      await Promise.all(dirs.map((d) => fsyncDir(d)));
      const missing = join(root, 'never-made');
      keepDirOpen(missing);
      await assert.rejects(fsyncDir(missing), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
      await assert.rejects(fsyncDir(join(root, 'not-kept')), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

