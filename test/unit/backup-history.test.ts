/**
 * The backup service's record of backups (DATA_DIR/last-backups.json): per volume and target the newest
 * success and whether the newest attempt failed, for one incarnation of the volume (a volume made again
 * under its name has no backups); the file before targets (a time per volume) is read as target "unknown";
 * an unreadable file is reported and the record starts empty.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BackupHistory, UNKNOWN_TARGET } from '../../src/backup/history.js';

const DB = { name: 'db', createdAt: '2026-01-01T00:00:00.000Z' };
const WEB = { name: 'web', createdAt: '2026-01-02T00:00:00.000Z' };

describe('BackupHistory', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-bhist-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the newest success per target, marks a failure without losing that success, and saves both', async () => {
    const file = join(dir, 'a.json');
    const h = new BackupHistory({ file });
    await h.load(); // no file yet: empty
    const db = { volume: DB.name, createdAt: DB.createdAt };
    h.record({ ...db, target: 'nas', ok: true, at: 100 });
    h.record({ ...db, target: 's3', ok: true, at: 200 });
    h.record({ ...db, target: 'nas', ok: false, at: 300 });
    h.record({ volume: WEB.name, createdAt: WEB.createdAt, target: 'nas', ok: false, at: 300 });
    assert.deepEqual(Object.fromEntries(h.targets(DB)), { nas: { lastSuccessAt: 100, failing: true, createdAt: DB.createdAt }, s3: { lastSuccessAt: 200, failing: false, createdAt: DB.createdAt } });
    assert.deepEqual(h.targets(WEB), [['nas', { failing: true, createdAt: WEB.createdAt }]]);
    assert.equal(h.lastSuccess(DB), 200);
    assert.equal(h.lastSuccess(WEB), undefined);
    h.record({ ...db, target: 'nas', ok: true, at: 400 });
    assert.equal(h.lastSuccess(DB), 400);
    await h.flush();
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
    assert.deepEqual(saved.db!.nas, { lastSuccessAt: 400, failing: false, createdAt: DB.createdAt });
    const again = new BackupHistory({ file });
    await again.load();
    assert.deepEqual(again.targets(DB), h.targets(DB));
    assert.deepEqual(again.targets(WEB), h.targets(WEB));
  });

  it('a volume made again under the same name has no backups, and its first one forgets the old volume\'s', () => {
    const h = new BackupHistory();
    h.record({ volume: 'db', createdAt: DB.createdAt, target: 'nas', ok: true, at: 100 });
    const again = { name: 'db', createdAt: '2026-02-01T00:00:00.000Z' };
    assert.deepEqual(h.targets(again), []);
    assert.equal(h.lastSuccess(again), undefined);
    h.record({ volume: 'db', createdAt: again.createdAt, target: 's3', ok: false, at: 200 });
    assert.deepEqual(h.targets(again), [['s3', { failing: true, createdAt: again.createdAt }]]);
    assert.deepEqual(h.targets(DB), [], 'the old volume\'s record is gone');
  });

  it('reads the file written before targets as target "unknown", for whichever volume has the name', async () => {
    const file = join(dir, 'old.json');
    writeFileSync(file, JSON.stringify({ db: 1700000000.5, bad: 'x' }));
    const h = new BackupHistory({ file });
    await h.load();
    assert.deepEqual(h.targets(DB), [[UNKNOWN_TARGET, { lastSuccessAt: 1700000000.5, failing: false }]]);
    assert.equal(h.lastSuccess(DB), 1700000000.5);
    assert.deepEqual(h.targets({ name: 'bad', createdAt: DB.createdAt }), []);
  });

  it('an unreadable file is reported and the record starts empty', async () => {
    const file = join(dir, 'garbage.json');
    writeFileSync(file, '{"db": {"nas": ');
    const errors: string[] = [];
    const h = new BackupHistory({ file, onError: (what) => errors.push(what) });
    await h.load();
    assert.deepEqual(h.targets(DB), []);
    assert.match(errors.join('\n'), /last-backup metrics start empty/);
  });
});
