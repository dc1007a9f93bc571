import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { Catalog } from '../../src/catalog/catalog.js';
import { parseVolumeOptions } from '../../src/daemon/volume-options.js';
import { VolumeService } from '../../src/volumes/service.js';
import { DirPool } from '../../src/pools/dir.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { JobRegistry } from '../../src/jobs/jobs.js';
import { BackupService } from '../../src/backup/service.js';
import { BackupHistory, type BackupOutcome } from '../../src/backup/history.js';

const HOUR = 3_600_000;

/** Scheduled backups with real volumes, a real file repository and a fake clock. */
describe('scheduled backups with a fake clock', () => {
  let dir: string;
  let clock = Date.parse('2026-01-01T00:30:00Z');
  const now = () => clock;
  let volumes: VolumeService;
  let snapshots: SnapshotService;
  let jobs: JobRegistry;
  let backups: BackupService;
  const log = pino({ level: 'silent' });
  const state = () => join(dir, 'backup-schedules.json');
  const tick = async () => {
    await backups.scheduledTick(state(), now);
    await backups.settled();
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-bsched-'));
    mkdirSync(join(dir, 'repo'));
    writeFileSync(join(dir, 'key'), 'secret');
    volumes = new VolumeService({ catalog: new Catalog(join(dir, 'catalog')), parseOptions: parseVolumeOptions, pools: new Map([['local', new DirPool('local', dir)]]), defaultPool: 'local', node: 'n1', trashRetentionMs: HOUR, log, now, resolveClone: (f) => snapshots.cloneSource(f) });
    snapshots = new SnapshotService(volumes, log, undefined, now);
    jobs = new JobRegistry(log);
    backups = new BackupService(volumes, snapshots, jobs, { targets: { nas: { url: `file://${join(dir, 'repo')}`, passwordFile: join(dir, 'key') } } }, 'n1', log);
    await volumes.start();
    await backups.init('nas');
  });
  after(async () => {
    await volumes?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('backs up on schedule, catches up once after downtime, and keeps what the policy says', async () => {
    await volumes.create('db', { 'backup-schedule': '@hourly', 'backup-target': 'nas', 'backup-keep': 'last=2' });
    writeFileSync(join(volumes.get('db').mountpoint, 'v'), 'one');
    await tick();
    assert.equal((await backups.list('nas', 'db')).backups.length, 0, 'nothing due before the first slot');
    for (let h = 1; h <= 4; h++) {
      clock = Date.parse('2026-01-01T00:00:00Z') + h * HOUR + 1000;
      writeFileSync(join(volumes.get('db').mountpoint, 'v'), `hour ${h}`);
      await tick();
      await tick(); // a second tick in the same hour does nothing
    }
    let list = (await backups.list('nas', 'db')).backups;
    assert.equal(list.length, 2, 'last=2: older scheduled backups are forgotten');
    assert.ok(list.every((b) => b.tags.includes('scheduled')));
    // ferryd "down" for ten hours: one catch-up run, not ten
    clock += 10 * HOUR;
    await tick();
    list = (await backups.list('nas', 'db')).backups;
    assert.equal(list.length, 2);
    // a manual backup is never forgotten by the schedule
    await jobs.wait((await backups.startBackup('db', { target: 'nas' })).id);
    clock += HOUR;
    await tick();
    list = (await backups.list('nas', 'db')).backups;
    assert.equal(list.filter((b) => !b.tags.includes('scheduled')).length, 1);
    assert.equal(list.filter((b) => b.tags.includes('scheduled')).length, 2);
    // what volume inspect shows: the schedule, its last run, its next
    const last = new Date(Math.floor(clock / HOUR) * HOUR);
    assert.deepEqual(await backups.schedule(volumes.get('db'), new Date(clock)), { kind: 'backup', schedule: '@hourly', keep: 'last=2', target: 'nas', source: 'volume option', lastRun: last.toISOString(), nextRun: new Date(last.getTime() + HOUR).toISOString(), due: false });
    const due = await backups.schedule(volumes.get('db'), new Date(last.getTime() + HOUR + 5000));
    assert.deepEqual([due?.due, due?.nextRun], [true, new Date(last.getTime() + HOUR + 5000).toISOString()], 'a slot passed without its run is due');
  });

  it('a scheduled backup refused before its job (target not there) is recorded as failing, until one succeeds', async () => {
    const file = join(dir, 'last-backups.json');
    const outcomes: BackupOutcome[] = [];
    const targets = { nas: { url: `file://${join(dir, 'repo')}`, passwordFile: join(dir, 'key') }, gone: { url: `file://${join(dir, 'gone')}`, passwordFile: join(dir, 'key') } };
    const b = new BackupService(volumes, snapshots, jobs, { targets }, 'n1', log);
    b.history = new BackupHistory({ file });
    b.onBackup = (o) => outcomes.push(o);
    const state2 = join(dir, 'backup-schedules-2.json');
    await volumes.create('web', { 'backup-schedule': '@hourly', 'backup-target': 'gone' });
    clock += HOUR;
    await b.scheduledTick(state2, now);
    await b.settled();
    const web = outcomes.filter((o) => o.volume === 'web');
    assert.deepEqual(web.map((o) => [o.target, o.ok, o.seconds]), [['gone', false, undefined]], 'refused before a job: no wall time');
    const web1 = volumes.get('web');
    assert.deepEqual(b.history.targets(web1), [['gone', { failing: true, createdAt: web1.createdAt }]]);
    assert.equal(b.history.lastSuccess(web1), undefined);

    // the target comes back: the next slot's backup succeeds and ends the failing state
    await b.init('gone');
    clock += HOUR;
    const t0 = Date.now() / 1000;
    await b.scheduledTick(state2, now);
    await b.settled();
    const last = outcomes.filter((o) => o.volume === 'web').pop()!;
    assert.equal(last.ok, true);
    assert.ok(last.seconds !== undefined && last.bytes !== undefined && last.bytesAdded !== undefined);
    const rec = Object.fromEntries(b.history.targets(web1)).gone;
    assert.equal(rec?.failing, false);
    assert.ok(rec?.lastSuccessAt !== undefined && rec.lastSuccessAt >= t0);
    // what a restarted ferryd reads
    await b.history.flush();
    const again = new BackupHistory({ file });
    await again.load();
    assert.deepEqual(Object.fromEntries(again.targets(web1)).gone, rec);
  });
});
