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

  it('tells each volume its schedule, its last run and its next (what volume inspect shows)', async () => {
    assert.deepEqual(await scheduler.describe(volumes.get('sched')), { kind: 'snapshot', schedule: '@hourly', keep: 'last=3,hourly=6,daily=2', source: 'volume option', lastRun: '2026-01-03T10:00:00.000Z', nextRun: '2026-01-03T11:00:00.000Z', due: false });
    assert.deepEqual(await scheduler.describe(volumes.get('by-label')), { kind: 'snapshot', schedule: '@hourly', keep: 'last=2', source: 'label backup=hourly', lastRun: '2026-01-03T10:00:00.000Z', nextRun: '2026-01-03T11:00:00.000Z', due: false });
    assert.equal(await scheduler.describe(volumes.get('unscheduled')), undefined);
    // a slot passed and not run yet (ferryd was down, or the pass has not come): due now
    clock = Date.parse('2026-01-03T12:00:05Z');
    const due = await scheduler.describe(volumes.get('sched'));
    assert.deepEqual([due?.due, due?.nextRun], [true, '2026-01-03T12:00:05.000Z']);
    await scheduler.tick();
    const after = await scheduler.describe(volumes.get('sched'));
    assert.deepEqual([after?.due, after?.lastRun, after?.nextRun], [false, '2026-01-03T12:00:00.000Z', '2026-01-03T13:00:00.000Z']);
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
    // inspect says when it runs next: 03:00 UTC, today's or tomorrow's
    const next = new Date();
    next.setUTCHours(3, 0, 0, 0);
    if (next.getTime() <= Date.now()) next.setUTCDate(next.getUTCDate() + 1);
    assert.deepEqual(v.schedules, [{ kind: 'snapshot', schedule: '0 3 * * *', keep: 'daily=7,weekly=4', source: 'volume option', nextRun: next.toISOString(), due: false }]);
    const text = (await f.cli('volume', 'inspect', 's1')).stdout;
    assert.match(text, new RegExp(`^Schedules: {2}snapshots 0 3 \\* \\* \\*, keep daily=7,weekly=4\n {14}next ${next.toISOString().slice(0, 10)} 03:00 UTC \\(in \\d+ (hours?|minutes?)\\)$`, 'm'));
    // a volume without a schedule has none, and no such line
    assert.equal((await f.cli('volume', 'create', 'plain')).code, 0);
    assert.deepEqual(JSON.parse((await f.cli('volume', 'inspect', 'plain', '--json')).stdout).schedules, []);
    assert.doesNotMatch((await f.cli('volume', 'inspect', 'plain')).stdout, /Schedules/);
  });
});
