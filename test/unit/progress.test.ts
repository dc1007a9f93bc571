/**
 * The CLI's progress line and tables as a person reads them: the pure renderer at 80 and 120 columns,
 * the printer with and without a terminal (a fake stream and clock), the rate meter, and table fitting.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressPrinter, RateMeter, etaSeconds, renderFinal, renderPlain, renderProgress, type ProgressState } from '../../src/cli/progress.js';
import { bytes, duration, table } from '../../src/cli/format.js';
import type { Job, JobProgress } from '../../src/wire/types.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const running = (progress: JobProgress, rate?: number, volume = 'db'): ProgressState => ({ kind: 'backup', volume, state: 'running', progress, ...(rate !== undefined ? { rate } : {}) });

const states: Record<string, ProgressState> = {
  snapshot: running({ phase: 'snapshot', bytesDone: 0, filesDone: 0 }),
  scan: running({ phase: 'scan', bytesDone: 12.5 * MiB, filesDone: 301 }, 30 * MiB),
  uploadNoRate: running({ phase: 'upload', bytesDone: 38 * MiB, bytesTotal: 306 * MiB, filesDone: 300, filesTotal: 301 }),
  upload: running({ phase: 'upload', bytesDone: 120 * MiB, bytesTotal: 284 * MiB, filesDone: 1204, filesTotal: 3000 }, 35.2 * MiB),
  big: running({ phase: 'upload', bytesDone: 1.2 * GiB, bytesTotal: 4.5 * GiB, filesDone: 123456, filesTotal: 987654 }, 2.1 * MiB, 'postgres-production-main-data-of-the-shop'),
  allRead: running({ phase: 'upload', bytesDone: 284 * MiB, bytesTotal: 284 * MiB, filesDone: 3000, filesTotal: 3000 }, 35 * MiB),
  finish: running({ phase: 'finish', bytesDone: 284 * MiB, bytesTotal: 284 * MiB, filesDone: 3000, filesTotal: 3000, bytesUploaded: 130 * MiB }),
  badRate: running({ phase: 'upload', bytesDone: 5 * MiB, bytesTotal: 10 * MiB, filesDone: 1, filesTotal: 2 }, NaN),
  infiniteRate: running({ phase: 'upload', bytesDone: 5 * MiB, bytesTotal: 10 * MiB, filesDone: 1, filesTotal: 2 }, Infinity),
  restore: { kind: 'restore', volume: 'db-copy', state: 'running', progress: { phase: 'restore', bytesDone: 700 * 1024, bytesTotal: 3 * MiB, filesDone: 10, filesTotal: 40 }, rate: 2 * MiB },
  verify: { kind: 'verify', state: 'running', progress: { phase: 'reading every pack', bytesDone: 12 * MiB, bytesTotal: 40 * MiB, filesDone: 3, filesTotal: 10 } },
};

/** What no person should ever read. */
function assertReadable(line: string, what: string): void {
  assert.doesNotMatch(line, /NaN|Infinity|undefined|null|NF|\[object/, `${what}: ${line}`);
  assert.doesNotMatch(line, /\b\d{4,} B\b/, `${what}: raw bytes: ${line}`);
  assert.doesNotMatch(line, /\n|\r/, `${what}: one line: ${JSON.stringify(line)}`);
}

/** The positions of the fields in a line, in the order a person reads them. */
function order(line: string): string[] {
  const marks: Array<[string, RegExp]> = [
    ['phase', /\b(snapshot|scan|upload|finish|restore|read)\b/],
    ['bar', /\[[#-]+\]/],
    ['percent', /\d+%/],
    ['bytes', /\d(\.\d)? (of \d+(\.\d)? )?(B|KiB|MiB|GiB)\b(?!\/s| sent)/],
    ['files', /\d+(\/\d+)? (files|packs)/],
    ['rate', /(B|KiB|MiB|GiB)\/s/],
    ['eta', /ETA \d/],
  ];
  return marks.filter(([, re]) => re.test(line)).sort((a, b) => line.search(a[1]) - line.search(b[1])).map(([name]) => name);
}

describe('the progress line at 80 and 120 columns', () => {
  for (const width of [80, 120]) {
    for (const [name, s] of Object.entries(states)) {
      it(`${name} at ${width} columns fits, reads as a person expects`, () => {
        const line = renderProgress(s, width);
        assert.ok(line.length <= width - 1, `${line.length} > ${width - 1}: ${line}`);
        assertReadable(line, name);
        const o = order(line);
        assert.equal(o[0], 'phase', `the phase comes first of the fields: ${line}`);
        const want = ['phase', 'bar', 'percent', 'bytes', 'files', 'rate', 'eta'].filter((f) => o.includes(f));
        assert.deepEqual(o, want, `fields in order: ${line}`);
      });
    }
  }

  it('at 80 columns a backup with its totals shows phase, percent, bytes of total, files of total, rate and ETA (the bar needs more room)', () => {
    const line = renderProgress(states.upload!, 80);
    assert.equal(line, 'upload  42%  120 of 284 MiB  1204/3000 files  35 MiB/s  ETA 5s');
    assert.match(renderProgress(states.verify!, 80), /^read {2}\[#+-+\] {2}30% {2}12 of 40 MiB {2}3\/10 packs$/, 'a shorter line has its bar');
  });

  it('at 120 columns the job is named first and there is a bar', () => {
    assert.match(renderProgress(states.upload!, 120), /^backup db {2}upload {2}\[#+-+\] {2}42% {2}120 of 284 MiB {2}1204\/3000 files {2}35 MiB\/s {2}ETA 5s$/);
    assert.match(renderProgress(states.big!, 120), /^upload {2}\[#+-+\] {2}26%/, 'a long name goes before the bar');
    assert.match(renderProgress({ ...states.big!, volume: 'postgres-production-main-data-of-the-shop' }, 160), /^backup postgres-production-main… {2}upload/, 'a long name is shortened with an ellipsis');
  });

  it('the layout does not jump when the rate and ETA come: their place is kept', () => {
    for (const w of [80, 100, 120]) {
      const before = renderProgress({ ...states.upload!, rate: undefined }, w);
      const after = renderProgress(states.upload!, w);
      assert.equal(after.startsWith(before), true, `${w}: ${before} / ${after}`);
    }
  });

  it('at 80 columns the least useful fields go first: the name and the bar before files, files before rate', () => {
    const line = renderProgress(states.big!, 80);
    assert.match(line, /^upload {2}26% {2}1\.2 of 4\.5 GiB {2}123456\/987654 files {2}2\.1 MiB\/s {2}ETA 26m50s$/);
    const tight = renderProgress(states.big!, 50);
    assert.ok(tight.length <= 49);
    assert.match(tight, /^upload {2}26% {2}1\.2 of 4\.5 GiB/);
    assert.doesNotMatch(tight, /files/);
    assert.ok(renderProgress(states.big!, 8).length <= 7, 'even a tiny terminal gets one line that fits');
  });

  it('while the walk goes on there is no total: no percent, no ETA, files and bytes counted without "of"', () => {
    const line = renderProgress(states.scan!, 80);
    assert.match(line, /^backup db {2}scan {2}13 MiB {2}301 files {2}30 MiB\/s$/);
  });

  it('never 100 % nor a full bar while the job runs (the last packs are still being sent)', () => {
    for (const s of [states.allRead!, states.finish!]) {
      for (const w of [80, 120]) {
        const line = renderProgress(s, w);
        assert.match(line, /99%/);
        assert.doesNotMatch(line, /100%/);
        assert.doesNotMatch(line, /\[#+\]/);
      }
    }
    assert.match(renderProgress(states.finish!, 80), /^finish {2}99% {2}284 of 284 MiB {2}3000\/3000 files {2}130 MiB sent$/);
  });

  it('leaves "sent" out while nothing is sent yet, rather than log "0 B sent" for a backup that then writes 20 MiB', () => {
    const justFinishing = { ...states.finish!, progress: { ...states.finish!.progress, bytesUploaded: 0 } };
    assert.equal(renderPlain(justFinishing), 'backup db: finish, 99%, 284 of 284 MiB, 3000/3000 files');
    assert.doesNotMatch(renderProgress(justFinishing, 120), /sent/);
  });

  it('no ETA without a rate that is a number', () => {
    for (const s of [states.uploadNoRate!, states.badRate!, states.infiniteRate!, states.verify!]) assert.doesNotMatch(renderProgress(s, 120), /ETA/);
    assert.equal(etaSeconds({ bytesDone: 1, bytesTotal: 2, filesDone: 0 }, 0), undefined);
    assert.equal(etaSeconds({ bytesDone: 1, bytesTotal: 2 * GiB, filesDone: 0 }, 1e-6), undefined, 'not 68 years');
    assert.equal(etaSeconds({ bytesDone: 10, bytesTotal: 10, filesDone: 0 }, 5), undefined);
    assert.equal(etaSeconds({ bytesDone: 0, bytesTotal: 10 * MiB, filesDone: 0 }, MiB), 10);
  });

  it('names what a job counts: packs for verify, KiB and MiB for a small restore', () => {
    assert.match(renderProgress(states.verify!, 120), /^verify {2}read {2}\[[#-]+\] {2}30% {2}12 of 40 MiB {2}3\/10 packs$/);
    assert.match(renderProgress(states.restore!, 80), /22% {2}700 KiB of 3\.0 MiB {2}10\/40 files {2}2\.0 MiB\/s {2}ETA 2s/);
  });

  it('without a terminal: every field, comma separated, no bar', () => {
    assert.equal(renderPlain(states.upload!), 'backup db: upload, 42%, 120 of 284 MiB, 1204/3000 files, 35 MiB/s, ETA 5s');
    assert.equal(renderPlain(states.snapshot!), 'backup db: snapshot');
  });
});

const job = (over: Partial<Job>): Job => ({ id: 'j1', kind: 'backup', volume: 'db', state: 'running', startedAt: '2026-01-01T00:00:00.000Z', progress: { bytesDone: 0, filesDone: 0 }, ...over });

describe('the final line', () => {
  it('a backup says what it stored, how long it took and what it wrote', () => {
    const line = renderFinal(job({ state: 'succeeded', finishedAt: '2026-01-01T00:00:08.100Z', result: { files: 3000, bytes: 284 * MiB, bytesNew: 12 * MiB, bytesAdded: 6.3 * MiB } }));
    assert.equal(line, 'backed up db: 3000 files, 284 MiB in 8.1s (35 MiB/s); new data 12 MiB, 6.3 MiB written to the target');
  });
  it('a restore, a verify, and a failure say where it stopped', () => {
    assert.equal(renderFinal(job({ kind: 'restore', volume: 'db2', state: 'succeeded', finishedAt: '2026-01-01T00:01:08.000Z', progress: { phase: 'restore', bytesDone: 3 * GiB, bytesTotal: 3 * GiB, filesDone: 12, filesTotal: 12 } })), 'restored db2: 12 files, 3.0 GiB in 1m08s');
    assert.equal(renderFinal(job({ kind: 'verify', volume: undefined, state: 'succeeded', finishedAt: '2026-01-01T00:00:02.000Z', progress: { bytesDone: 40 * MiB, filesDone: 10, filesTotal: 10 } })), 'verified: 10 packs, 40 MiB in 2s');
    assert.equal(renderFinal(job({ state: 'failed', finishedAt: '2026-01-01T00:00:03.000Z', progress: { phase: 'upload', bytesDone: 120 * MiB, bytesTotal: 284 * MiB, filesDone: 1204, filesTotal: 3000 } })), 'backup db failed during upload after 3s (120 of 284 MiB, 1204/3000 files)');
  });
});

/** A stream that records what is written, and a clock the test moves. */
function fakeOut(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns, write: (s: string) => writes.push(s) } };
}

describe('the printer', () => {
  it('without a terminal: a line per phase change, at most one per 10 s, never the same line twice', () => {
    let now = 0;
    const { writes, out } = fakeOut(false);
    const p = new ProgressPrinter(out, () => now);
    const at = (t: number, progress: JobProgress) => {
      now = t;
      p.update(job({ progress }));
    };
    at(0, { phase: 'snapshot', bytesDone: 0, filesDone: 0 });
    at(500, { phase: 'snapshot', bytesDone: 0, filesDone: 0 });
    at(10_500, { phase: 'snapshot', bytesDone: 0, filesDone: 0 }); // 10 s on, but nothing new to say
    at(21_000, { phase: 'snapshot', bytesDone: 0, filesDone: 0 });
    at(21_500, { phase: 'scan', bytesDone: MiB, filesDone: 10 });
    at(22_000, { phase: 'scan', bytesDone: 2 * MiB, filesDone: 20 });
    at(22_500, { phase: 'upload', bytesDone: 3 * MiB, bytesTotal: 100 * MiB, filesDone: 30, filesTotal: 90 });
    for (let t = 23_000; t <= 32_000; t += 500) at(t, { phase: 'upload', bytesDone: 3 * MiB + (t - 22_500) * 1000, bytesTotal: 100 * MiB, filesDone: 30, filesTotal: 90 });
    at(32_500, { phase: 'upload', bytesDone: 50 * MiB, bytesTotal: 100 * MiB, filesDone: 60, filesTotal: 90 });
    at(33_000, { phase: 'finish', bytesDone: 100 * MiB, bytesTotal: 100 * MiB, filesDone: 90, filesTotal: 90, bytesUploaded: 10 * MiB });
    p.finish(job({ state: 'succeeded', startedAt: '1970-01-01T00:00:00.000Z', finishedAt: '1970-01-01T00:00:34.000Z', result: { files: 90, bytes: 100 * MiB, bytesNew: 100 * MiB, bytesAdded: 100 * MiB } }));
    const lines = writes.join('').split('\n').filter(Boolean);
    assert.deepEqual(
      lines.map((l) => l.split(/[:,]/)[0] + (l.startsWith('backup db:') ? ':' + l.split(/[:,]/)[1] : '')),
      ['backup db: snapshot', 'backup db: scan', 'backup db: upload', 'backup db: upload', 'backup db: finish', 'backed up db'],
      lines.join('\n'),
    );
    assert.equal(new Set(lines).size, lines.length, 'no line twice');
    assert.equal(lines[2], 'backup db: upload, 3%, 3.0 of 100 MiB, 30/90 files, 2.0 MiB/s, ETA 49s');
    assert.equal(lines[3], 'backup db: upload, 50%, 50 of 100 MiB, 60/90 files, 4.7 MiB/s, ETA 11s', 'the 10-s line has a rate and an ETA');
    assert.match(lines[5]!, /^backed up db: 90 files, 100 MiB in 34s/);
    assert.ok(writes.every((w) => !w.includes('\r') && !w.includes('\x1b')), 'no terminal codes in a log');
  });

  it('on a terminal: one line redrawn in place, only when it changes, then the final line', () => {
    let now = 0;
    const { writes, out } = fakeOut(true, 80);
    const p = new ProgressPrinter(out, () => now);
    for (let t = 0; t <= 3000; t += 200) {
      now = t;
      p.update(job({ progress: { phase: 'upload', bytesDone: t * 10_000, bytesTotal: 100 * MiB, filesDone: 1, filesTotal: 5 } }));
    }
    p.update(job({ progress: { phase: 'upload', bytesDone: 30_000_000, bytesTotal: 100 * MiB, filesDone: 1, filesTotal: 5 } }));
    p.finish(job({ state: 'succeeded', finishedAt: '1970-01-01T00:00:04.000Z', startedAt: '1970-01-01T00:00:00.000Z', result: { files: 5, bytes: 100 * MiB, bytesNew: 0, bytesAdded: 0 } }));
    const frames = writes.slice(0, -1);
    assert.equal(new Set(frames).size, frames.length, 'an unchanged line is not written again');
    for (const f of frames) {
      assert.match(f, /^\r.*\x1b\[K$/);
      const text = f.slice(1, -3);
      assert.ok(text.length <= 79, text);
      assertReadable(text, 'frame');
    }
    assert.match(writes.at(-1)!, /^\r\x1b\[Kbacked up db: 5 files, 100 MiB in 4s \(25 MiB\/s\); new data 0 B, 0 B written to the target\n$/);
  });

  it('the rate is measured over a window of seconds, none before a second of samples, and starts again when the count does', () => {
    const m = new RateMeter(10_000);
    m.add(0, 0);
    m.add(500, 10 * MiB);
    assert.equal(m.rate(), undefined);
    m.add(1000, 20 * MiB);
    assert.equal(m.rate(), 20 * MiB);
    for (let t = 1500; t <= 30_000; t += 500) m.add(t, 20 * MiB + (t - 1000) * 1000);
    assert.equal(Math.round(m.rate()!), 1_000_000, 'the old fast second has left the window');
    m.add(30_500, 0, 'sent');
    assert.equal(m.rate(), undefined);
  });
});

describe('units and tables', () => {
  it('bytes and durations as a person reads them', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 10 * MiB, 1.5 * GiB, NaN].map(bytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '10 MiB', '1.5 GiB', '-']);
    assert.deepEqual([500, 4000, 8100, 45_000, 185_000, 7_380_000, 3 * 86_400_000 + 4 * 3_600_000, NaN, Infinity].map(duration), ['0.5s', '4s', '8.1s', '45s', '3m05s', '2h03m', '3d04h', '-', '-']);
  });

  it('a table wider than 100 columns shortens the columns it may, in their order, with an ellipsis, and keeps the others whole', () => {
    const url = `file:///mnt/backups/ferry?backup=${'a'.repeat(32)}&volume=postgres-production-main`;
    const rows = [['0123456789ab', 'postgres-production-main', 'node-one', '3 minutes ago', '3000', '284 MiB', '12 MiB', url]];
    const t = table(['ID', 'VOLUME', 'NODE', 'TIME', 'FILES', 'SIZE', 'ADDED', 'URL'], rows, { width: 100, shrink: ['URL', 'VOLUME', 'NODE'] });
    const lines = t.split('\n');
    for (const l of lines) assert.ok(l.length <= 100, `${l.length}: ${l}`);
    assert.equal(lines[1], '0123456789ab   postgres-producti…   node-one   3 minutes ago   3000    284 MiB   12 MiB   file:///m…', 'the URL is cut first, then the volume');
    assert.equal(table(['A', 'B'], [['x', 'y']]), 'A   B\nx   y', 'a narrow table is unchanged');
    const names = table(['NAME', 'POOL'], [['n'.repeat(150), 'local']], { width: 100, shrink: ['NAME'] });
    assert.equal(names.split('\n')[1], `${'n'.repeat(91)}…   local`);
    // a column not named in `shrink` is never cut, even when the row is then wider than the table
    const wide = table(['NAME', 'POOL'], [[`${'n'.repeat(120)}-a`, 'a-pool-with-a-long-name'], [`${'n'.repeat(120)}-b`, 'local']], { width: 100, shrink: ['POOL'] }).split('\n');
    assert.deepEqual(wide.slice(1), [`${'n'.repeat(120)}-a   a-pool-wi…`, `${'n'.repeat(120)}-b   local`], 'the pool is cut as far as it may be; two long names that differ at their end stay two');
  });
});
