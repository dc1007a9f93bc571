// A kill -9 of ferryd around Docker's Create: what was acknowledged is there after the restart, whole; a create cut short leaves no half-written record.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd } from '../helpers/ferryd.js';

/**
 * Create writes and fsyncs the volume's record while its directory is made and flushed, and renames the
 * record into place only once both are on disk (catalog.ts, RecordStore.saveAfter). These tests crash ferryd
 * at that point and after a series of acknowledged creates and removes, and restart it on the same data dir.
 */
describe('kill -9 around Create and Remove', () => {
  it('keeps every acknowledged create and remove; a create killed between its directory and its record is adopted, and no temporary record stays', async () => {
    const said = `/tmp/ferry-create-crash-${process.pid}`;
    const f = await startFerryd({ logLevel: 'info', env: { FERRY_TEST_PAUSE: 'create-before-record:30000', FERRY_TEST_PAUSE_FILE: said } });
    let g: Awaited<ReturnType<typeof startFerryd>> | undefined;
    try {
      const plugin = async (call: string, body: unknown) => {
        const a = await f.plugin(call, body);
        return JSON.parse(a.text) as { Err?: string; Volume?: { Status: { options: Record<string, unknown>; [k: string]: unknown } } };
      };
      // acknowledged changes, made by a ferryd without the pause on the same data dir, then kill -9
      await f.stop();
      const h = await startFerryd({ dir: f.dir, logLevel: 'info' });
      try {
        for (let i = 0; i < 5; i++) assert.equal(JSON.parse((await h.plugin('Create', { Name: `kept-${i}`, Opts: { mode: '0750' } })).text).Err, '');
        assert.equal(JSON.parse((await h.plugin('Create', { Name: 'gone' })).text).Err, '');
        assert.equal(JSON.parse((await h.plugin('Remove', { Name: 'gone' })).text).Err, '');
        await h.crash();
      } finally {
        await h.stop().catch(() => undefined);
      }
      await f.start(); // with the pause: Create waits between its directory and its record
      const pending = plugin('Create', { Name: 'cut' }).catch(() => undefined);
      const deadline = Date.now() + 20_000;
      while (!(existsSync(said) && readFileSync(said, 'utf8').includes('create-before-record'))) {
        assert.ok(Date.now() < deadline, 'ferryd did not reach create-before-record');
        await new Promise((r) => setTimeout(r, 20));
      }
      // the record's temporary file is written and fsynced meanwhile; the record itself is not in place
      const records = () => readdirSync(join(f.dataDir, 'catalog', 'volumes'));
      while (!records().some((e) => e.startsWith('.cut.json.tmp-'))) {
        assert.ok(Date.now() < deadline, 'the record of cut was not staged');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(!records().includes('cut.json'), 'no record before the directory is durable and the pause is over');
      await f.crash();
      await pending;

      g = await startFerryd({ dir: f.dir, logLevel: 'info' });
      const get = async (name: string) => JSON.parse((await g!.plugin('Get', { Name: name })).text) as { Err?: string; Volume?: { Status: { options: Record<string, unknown> } } };
      for (let i = 0; i < 5; i++) {
        const v = await get(`kept-${i}`);
        assert.equal(v.Err, '', `kept-${i} is there after the crash`);
        assert.equal(v.Volume!.Status.options.mode, '0750', `kept-${i} has its options (its own record, not an adoption)`);
      }
      assert.notEqual((await get('gone')).Err, '', 'the acknowledged remove stays done');
      const listed = JSON.parse((await g.cli('--json', 'trash', 'ls')).stdout) as Array<{ name: string }> | { trash: Array<{ name: string }> };
      const trash = Array.isArray(listed) ? listed : listed.trash;
      assert.ok(trash.some((t) => t.name === 'gone'), 'the removed volume is in the trash');
      // the create cut short: its directory was on disk, so the volume is adopted (never a record without a directory)
      assert.equal((await get('cut')).Err, '', 'the directory of the create cut short is adopted');
      const leftovers = readdirSync(join(f.dataDir, 'catalog', 'volumes')).filter((e) => e.includes('.tmp-'));
      assert.deepEqual(leftovers, [], 'no temporary record file is left in the catalog');
    } finally {
      await g?.destroy();
      await f.destroy();
      await import('node:fs/promises').then((fs) => fs.rm(said, { force: true }));
    }
  });

  it('undoes a Remove killed between moving the data into the trash and putting its trash record in place', async () => {
    const said = `/tmp/ferry-remove-crash-${process.pid}`;
    const f = await startFerryd({ logLevel: 'info', env: { FERRY_TEST_PAUSE: 'remove-before-trash-record:30000', FERRY_TEST_PAUSE_FILE: said } });
    let g: Awaited<ReturnType<typeof startFerryd>> | undefined;
    try {
      const err = async (call: string, body: unknown) => (JSON.parse((await f.plugin(call, body)).text) as { Err: string }).Err;
      assert.equal(await err('Create', { Name: 'doomed', Opts: { mode: '0750' } }), '');
      writeFileSync(join(f.dataDir, 'volumes', 'doomed', 'data', 'file'), 'still here');
      const pending = f.plugin('Remove', { Name: 'doomed' }).catch(() => undefined);
      const deadline = Date.now() + 20_000;
      while (!(existsSync(said) && readFileSync(said, 'utf8').includes('remove-before-trash-record'))) {
        assert.ok(Date.now() < deadline, 'ferryd did not reach remove-before-trash-record');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(readdirSync(join(f.dataDir, 'trash')).some((e) => e.startsWith('doomed@')), 'the data is in the trash');
      assert.ok(!readdirSync(join(f.dataDir, 'catalog', 'trash')).some((e) => e.startsWith('doomed@') && e.endsWith('.json')), 'its trash record is not in place');
      await f.crash();
      await pending;

      g = await startFerryd({ dir: f.dir, logLevel: 'info' });
      const v = JSON.parse((await g.plugin('Get', { Name: 'doomed' })).text) as { Err: string; Volume?: { Mountpoint: string; Status: { options: Record<string, unknown> } } };
      assert.equal(v.Err, '', 'the volume whose removal was not acknowledged is there');
      assert.equal(v.Volume!.Status.options.mode, '0750', 'with its own record');
      assert.equal(readFileSync(join(v.Volume!.Mountpoint, 'file'), 'utf8'), 'still here', 'and its data');
      assert.deepEqual(readdirSync(join(f.dataDir, 'trash')).filter((e) => e.startsWith('doomed@')), [], 'nothing of it stays in the trash');
      // the same removal, acknowledged this time, survives a kill -9
      assert.equal((JSON.parse((await g.plugin('Remove', { Name: 'doomed' })).text) as { Err: string }).Err, '');
      await g.crash();
      await g.start();
      assert.notEqual((JSON.parse((await g.plugin('Get', { Name: 'doomed' })).text) as { Err: string }).Err, '', 'the acknowledged remove stays done');
      assert.equal(readdirSync(join(f.dataDir, 'trash')).filter((e) => e.startsWith('doomed@')).length, 1, 'its data is in the trash');
      assert.equal(readdirSync(join(f.dataDir, 'catalog', 'trash')).filter((e) => e.startsWith('doomed@') && e.endsWith('.json')).length, 1, 'with its trash record');
    } finally {
      await g?.destroy();
      await f.destroy();
      await import('node:fs/promises').then((fs) => fs.rm(said, { force: true }));
    }
  });

  it('leaves no volume, and not part of one, of a restore or a clone killed before its record; both run again whole', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ferry-fill-crash-'));
    const said = join(base, 'said');
    writeFileSync(join(base, 'key'), 'secret\n', { mode: 0o600 });
    mkdirSync(join(base, 'repo'));
    writeFileSync(join(base, 'ferry.yaml'), ['backupTargets:', '  nas:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'key')}`].join('\n'));
    const extraArgs = ['--config', join(base, 'ferry.yaml')];
    const f = await startFerryd({ dir: join(base, 'host'), logLevel: 'info', extraArgs });
    let g: Awaited<ReturnType<typeof startFerryd>> | undefined;
    try {
      const ok = async (d: typeof f, ...args: string[]) => {
        const r = await d.cli(...args);
        assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
        return r.stdout;
      };
      await ok(f, 'backup', 'init', '--target', 'nas');
      await ok(f, 'volume', 'create', 'src');
      const files = Array.from({ length: 20 }, (_, i) => [`file-${i}`, randomBytes(64 * 1024 + i)] as const);
      for (const [n, b] of files) writeFileSync(join(f.dataDir, 'volumes', 'src', 'data', n), b);
      const url = (await ok(f, 'backup', 'create', 'src', '--target', 'nas')).trim();
      await ok(f, 'snapshot', 'create', 'src', '--name', 's1');
      await f.stop();

      // a restore paused once its data is filled, a clone once its directory is made: neither has its record
      g = await startFerryd({ dir: f.dir, logLevel: 'info', extraArgs, env: { FERRY_TEST_PAUSE: 'create-filled:30000,create-before-record:30000', FERRY_TEST_PAUSE_FILE: said } });
      const restoring = g.cli('backup', 'restore', url, 'restored');
      const cloning = g.cli('volume', 'create', 'cl', '-o', 'from=src@s1');
      const deadline = Date.now() + 30_000;
      const reached = () => (existsSync(said) ? readFileSync(said, 'utf8') : '');
      while (!(reached().includes('create-filled') && reached().includes('create-before-record'))) {
        assert.ok(Date.now() < deadline, `ferryd did not reach both pauses (${reached()})`);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(existsSync(join(f.dataDir, 'volumes', 'restored', 'data', 'file-0')), 'the restore filled its directory');
      assert.ok(existsSync(join(f.dataDir, 'volumes', 'cl', 'data', 'file-0')), 'the clone filled its directory');
      await g.crash();
      const [restoreCli] = await Promise.all([restoring, cloning]);
      // the CLI that followed the restore says it lost ferryd, that the end is unknown, and where to learn it
      assert.equal(restoreCli.code, 1, restoreCli.stderr);
      assert.match(restoreCli.stderr, /lost ferryd while following job (\S+) \(restore of restored\), so how it ended is not known: cannot reach ferryd/);
      const jobId = /following job (\S+) /.exec(restoreCli.stderr)![1]!;
      assert.match(restoreCli.stderr, new RegExp(`\`ferry job wait ${jobId}\` says`));
      await g.destroy().catch(() => undefined);
      g = undefined;

      await f.start();
      const waited = await f.cli('job', 'wait', jobId);
      assert.deepEqual([waited.code, /interrupted|ferryd stopped while this job ran/.test(waited.stderr)], [1, true], `job wait tells how the restore ended: ${waited.stderr}`);
      const names = (JSON.parse(await ok(f, '--json', 'volume', 'ls')) as Array<{ name: string }>).map((v) => v.name);
      assert.deepEqual(names, ['src'], 'neither the restore nor the clone cut short is a volume');
      assert.deepEqual(readdirSync(join(f.dataDir, 'volumes')).sort(), ['src'], 'nor a directory in the pool');
      assert.deepEqual(readdirSync(join(f.dataDir, 'trash')).filter((e) => !e.startsWith('.')), [], 'nor in its trash');
      assert.deepEqual(readdirSync(join(f.dataDir, 'catalog', 'filling')), [], 'no marker is left');
      assert.match(await f.logs(), /removing the partial data of a restore or clone that a crash cut short/);
      // run again, each gives the data whole
      await ok(f, 'backup', 'restore', url, 'restored');
      await ok(f, 'volume', 'create', 'cl', '-o', 'from=src@s1');
      for (const v of ['restored', 'cl']) for (const [n, b] of files) assert.ok(readFileSync(join(f.dataDir, 'volumes', v, 'data', n)).equals(b), `${v}/${n} is byte-identical`);
      assert.deepEqual(readdirSync(join(f.dataDir, 'catalog', 'filling')), [], 'nor after a create that completed');

      // a marker names its pool: a recordless directory of that name in another pool is adopted, data and all
      await f.stop();
      mkdirSync(join(f.dataDir, 'volumes', 'orphan', 'data'), { recursive: true });
      writeFileSync(join(f.dataDir, 'volumes', 'orphan', 'data', 'kept'), files[0]![1]);
      writeFileSync(join(f.dataDir, 'catalog', 'filling', 'orphan'), 'some-other-pool');
      await f.start();
      const after = JSON.parse(await ok(f, '--json', 'volume', 'ls')) as Array<{ name: string }>;
      assert.deepEqual(after.map((v) => v.name).sort(), ['cl', 'orphan', 'restored', 'src'], 'the directory is adopted');
      assert.ok(readFileSync(join(f.dataDir, 'volumes', 'orphan', 'data', 'kept')).equals(files[0]![1]), 'with its data');
      assert.deepEqual(readdirSync(join(f.dataDir, 'catalog', 'filling')), [], 'and the marker is gone');
    } finally {
      await g?.destroy().catch(() => undefined);
      await f.destroy();
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('keeps a Remove acknowledged before its volume record was deleted: the record left beside the trash record is dropped at start', async () => {
    // A local Remove answers Docker once the data is in the trash and the trash record is on disk; the volume's
    // record is deleted after. Killed in between, the disk holds both records: put that state together by hand.
    const f = await startFerryd({ logLevel: 'info' });
    try {
      const err = async (call: string, body: unknown) => (JSON.parse((await f.plugin(call, body)).text) as { Err: string }).Err;
      assert.equal(await err('Create', { Name: 'left', Opts: { mode: '0750' } }), '');
      writeFileSync(join(f.dataDir, 'volumes', 'left', 'data', 'file'), 'in the trash');
      const recordFile = join(f.dataDir, 'catalog', 'volumes', 'left.json');
      const record = readFileSync(recordFile, 'utf8');
      assert.equal(await err('Remove', { Name: 'left' }), '');
      assert.notEqual(await err('Get', { Name: 'left' }), '', 'gone at once, before the record file is');
      await f.crash();
      writeFileSync(recordFile, record);
      await f.start();
      assert.notEqual(await err('Get', { Name: 'left' }), '', 'the acknowledged remove stays done');
      assert.ok(!existsSync(recordFile), 'the record left behind is deleted');
      const [id] = readdirSync(join(f.dataDir, 'trash')).filter((e) => e.startsWith('left@'));
      assert.ok(id, 'the data is in the trash');
      assert.equal(readFileSync(join(f.dataDir, 'trash', id, 'data', 'file'), 'utf8'), 'in the trash');
      // and it comes back whole from there
      const undone = await f.cli('volume', 'undelete', 'left');
      assert.equal(undone.code, 0, undone.stderr);
      assert.equal(await err('Get', { Name: 'left' }), '');
      assert.equal(readFileSync(join(f.dataDir, 'volumes', 'left', 'data', 'file'), 'utf8'), 'in the trash');
    } finally {
      await f.destroy();
    }
  });
});
