import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { Catalog } from '../../src/catalog/catalog.js';
import { parseVolumeOptions } from '../../src/daemon/volume-options.js';
import { VolumeService } from '../../src/volumes/service.js';
import { DirPool } from '../../src/pools/dir.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { SnapshotScheduler } from '../../src/snapshots/scheduler.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';

const HOUR = 3_600_000;

/**
 * The scheduler with real volumes and real snapshots on disk, and a fake clock: two days of hourly
 * ticks, then ferryd "down" for ten hours.
 */
describe('scheduled snapshots with a fake clock', () => {
  let dir: string;
  let clock = Date.parse('2026-01-01T00:30:00Z');
  let volumes: VolumeService;
  let snapshots: SnapshotService;
  let scheduler: SnapshotScheduler;
  const log = pino({ level: 'silent' });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sched-'));
    const now = () => clock;
    volumes = new VolumeService({ catalog: new Catalog(join(dir, 'catalog')), parseOptions: parseVolumeOptions, pools: new Map([['local', new DirPool('local', dir)]]), defaultPool: 'local', node: 'n1', trashRetentionMs: HOUR, log, now, resolveClone: (f) => snapshots.cloneSource(f) });
    snapshots = new SnapshotService(volumes, log, undefined, now);
    await volumes.start();
    scheduler = new SnapshotScheduler(volumes, snapshots, [{ label: 'backup=hourly', schedule: '@hourly', keep: 'last=2' }], log, now);
  });
  after(async () => {
    await volumes?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes one snapshot per slot, thins them by the keep policy, never touches manual ones', async () => {
    const v = await volumes.create('sched', { 'snapshot-schedule': '@hourly', 'snapshot-keep': 'last=3,hourly=6,daily=2' });
    await volumes.create('by-label', {}, { backup: 'hourly' });
    await volumes.create('unscheduled', {}, { backup: 'never' });
    writeFileSync(join(v.mountpoint, 'f'), 'x');
    const manual = await snapshots.create('sched', { name: 'keep-me' });
    assert.equal(await scheduler.tick(), 0, 'nothing is due before the first slot after creation');
    for (let h = 1; h <= 48; h++) {
      clock = Date.parse('2026-01-01T00:30:00Z') + h * HOUR;
      writeFileSync(join(v.mountpoint, 'f'), `hour ${h}`);
      assert.equal(await scheduler.tick(), 2, `hour ${h}: one run for the option, one for the label`);
      assert.equal(await scheduler.tick(), 0, 'no second run in the same slot');
    }
    const slots = (await snapshots.list('sched')).filter((s) => s.origin === 'schedule').map((s) => s.slot);
    assert.deepEqual(slots, ['2026-01-02T19:00:00.000Z', '2026-01-02T20:00:00.000Z', '2026-01-02T21:00:00.000Z', '2026-01-02T22:00:00.000Z', '2026-01-02T23:00:00.000Z', '2026-01-03T00:00:00.000Z']);
    assert.ok((await snapshots.list('sched')).some((s) => s.id === manual.id), 'manual snapshot kept');
    assert.equal((await snapshots.list('by-label')).length, 2, 'label rule keep=last=2');
    assert.equal((await snapshots.list('unscheduled')).length, 0);
    const newest = (await snapshots.list('sched')).at(-1)!;
    assert.equal(newest.name, 'scheduled-2026-01-03T00-00-00Z');
  });

  it('after ten hours down, catches up with one run, not ten', async () => {
    clock = Date.parse('2026-01-03T10:30:00Z');
    assert.equal(await scheduler.tick(), 2);
    assert.equal(await scheduler.tick(), 0);
    const s = (await snapshots.list('sched')).filter((x) => x.origin === 'schedule');
    assert.equal(s.at(-1)!.slot, '2026-01-03T10:00:00.000Z');
    assert.equal(s.length, 6, 'still thinned to the policy');
  });
});

describe('schedule options through ferryd', () => {
  let f: Ferryd;
  before(async () => {
    f = await startFerryd();
  });
  after(async () => {
    await f?.destroy();
  });

  it('validates snapshot-schedule and snapshot-keep with clear errors and keeps them', async () => {
    const bad = await f.cli('volume', 'create', 's1', '-o', 'snapshot-schedule=every hour');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /snapshot-schedule "every hour": .*like "0 \* \* \* \*"/);
    const badKeep = await f.cli('volume', 'create', 's1', '-o', 'snapshot-schedule=@daily', '-o', 'snapshot-keep=daily=x');
    assert.match(badKeep.stderr, /daily must be a positive integer/);
    const lonely = await f.cli('volume', 'create', 's1', '-o', 'snapshot-keep=last=3');
    assert.match(lonely.stderr, /snapshot-keep needs snapshot-schedule/);
    const ok = await f.cli('volume', 'create', 's1', '-o', 'snapshot-schedule=0 3 * * *', '-o', 'snapshot-keep=daily=7, weekly=4');
    assert.equal(ok.code, 0, ok.stderr);
    const v = JSON.parse((await f.cli('volume', 'inspect', 's1', '--json')).stdout);
    assert.equal(v.options['snapshot-schedule'], '0 3 * * *');
    assert.equal(v.options['snapshot-keep'], 'daily=7,weekly=4');
  });
});
