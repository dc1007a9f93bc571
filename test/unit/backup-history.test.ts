/**
 * The backup service's record of backups (DATA_DIR/last-backups.json): per volume and target the newest
 * success and whether the newest attempt failed; the file before targets (a time per volume) is read as
 * target "unknown"; an unreadable file is reported and the record starts empty.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BackupHistory, UNKNOWN_TARGET } from '../../src/backup/history.js';

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
    h.record({ volume: 'db', target: 'nas', ok: true, at: 100 });
    h.record({ volume: 'db', target: 's3', ok: true, at: 200 });
    h.record({ volume: 'db', target: 'nas', ok: false, at: 300 });
    h.record({ volume: 'web', target: 'nas', ok: false, at: 300 });
    assert.deepEqual(h.all().get('db')?.get('nas'), { lastSuccessAt: 100, failing: true });
    assert.deepEqual(h.all().get('web')?.get('nas'), { failing: true });
    assert.equal(h.lastSuccess('db'), 200);
    assert.equal(h.lastSuccess('web'), undefined);
    h.record({ volume: 'db', target: 'nas', ok: true, at: 400 });
    assert.deepEqual(h.all().get('db')?.get('nas'), { lastSuccessAt: 400, failing: false });
    await h.flush();
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { db: { nas: { lastSuccessAt: 400, failing: false }, s3: { lastSuccessAt: 200, failing: false } }, web: { nas: { failing: true } } });
    const again = new BackupHistory({ file });
    await again.load();
    assert.deepEqual(again.all(), h.all());
  });

  it('reads the file written before targets as target "unknown"', async () => {
    const file = join(dir, 'old.json');
    writeFileSync(file, JSON.stringify({ db: 1700000000.5, bad: 'x' }));
    const h = new BackupHistory({ file });
    await h.load();
    assert.deepEqual([...h.all().keys()], ['db']);
    assert.deepEqual(h.all().get('db')?.get(UNKNOWN_TARGET), { lastSuccessAt: 1700000000.5, failing: false });
    assert.equal(h.lastSuccess('db'), 1700000000.5);
  });

  it('an unreadable file is reported and the record starts empty', async () => {
    const file = join(dir, 'garbage.json');
    writeFileSync(file, '{"db": {"nas": ');
    const errors: string[] = [];
    const h = new BackupHistory({ file, onError: (what) => errors.push(what) });
    await h.load();
    assert.equal(h.all().size, 0);
    assert.match(errors.join('\n'), /last-backup metrics start empty/);
  });
});
