import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { Catalog } from '../../src/volumes/catalog.js';
import { VolumeService } from '../../src/volumes/service.js';
import { DirPool } from '../../src/pools/dir.js';
import { SnapshotService } from '../../src/snapshots/service.js';
import { JobRegistry } from '../../src/jobs/jobs.js';
import { BackupService } from '../../src/backup/service.js';

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
    volumes = new VolumeService({ catalog: new Catalog(join(dir, 'catalog')), pools: new Map([['local', new DirPool('local', dir)]]), defaultPool: 'local', node: 'n1', trashRetentionMs: HOUR, log, now, resolveClone: (f) => snapshots.cloneSource(f) });
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
  });
});
