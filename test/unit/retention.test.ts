import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyRetention,
  formatKeepPolicy,
  isoWeekKey,
  parseKeepPolicy,
  type KeepPolicy,
} from '../../src/policy/retention.js';
import { dueRun, parseSchedule } from '../../src/policy/schedule.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const END = Date.parse('2026-11-26T12:00:00.000Z'); // a Thursday, ISO week 2026-W48

interface Snap {
  id: string;
  createdAt: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const snap = (ms: number): Snap => ({ id: `s${ms}`, createdAt: iso(ms) });
/** `count` hourly snapshots, the newest at `end`, oldest first (applyRetention must sort them itself). */
const hourly = (count: number, end = END): Snap[] => Array.from({ length: count }, (_, i) => snap(end - (count - 1 - i) * HOUR));
const keptTimes = (r: { keep: Array<{ item: Snap }> }): string[] => r.keep.map((k) => k.item.createdAt);
const isInvalid = (e: unknown): boolean => (e as { code?: string }).code === 'invalid';

/**
 * The expected kept set, computed in the plainest way, independently of the implementation: per rule, group the
 * snapshots (newest first) by a bucket label made from the ISO text, take the newest snapshot of the first n
 * groups, and (restic ≥ 0.17) the oldest snapshot as well if there are fewer than n groups.
 */
function expectedKept(createdAt: string[], p: KeepPolicy): Set<string> {
  const newestFirst = [...createdAt].sort().reverse();
  const mondayOf = (t: string): string => {
    const ms = Date.parse(t);
    const daysSinceMonday = (new Date(ms).getUTCDay() + 6) % 7;
    return iso(ms - daysSinceMonday * DAY).slice(0, 10);
  };
  const labels: Array<[number | undefined, (t: string) => string]> = [
    [p.last, (t) => t],
    [p.hourly, (t) => t.slice(0, 13)], // 2026-11-26T12
    [p.daily, (t) => t.slice(0, 10)], // 2026-11-26
    [p.weekly, mondayOf], // the Monday that starts the ISO week
    [p.monthly, (t) => t.slice(0, 7)], // 2026-11
    [p.yearly, (t) => t.slice(0, 4)], // 2026
  ];
  const keep = new Set<string>();
  for (const [n, label] of labels) {
    if (n === undefined) continue;
    const newestOfGroup = new Map<string, string>();
    for (const t of newestFirst) if (!newestOfGroup.has(label(t))) newestOfGroup.set(label(t), t);
    for (const t of [...newestOfGroup.values()].slice(0, n)) keep.add(t);
    if (newestOfGroup.size < n) keep.add(newestFirst[newestFirst.length - 1]!);
  }
  if (p.within !== undefined) for (const t of newestFirst) if (Date.parse(t) > Date.parse(newestFirst[0]!) - p.within) keep.add(t);
  return keep;
}

describe('retention: a year of hourly snapshots', () => {
  const year = hourly(365 * 24);
  const policy = parseKeepPolicy('last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3');
  const r = applyRetention(year, policy, new Date(END));
  const kept = keptTimes(r);
  const reasonsOf = (t: string): string[] => r.keep.find((k) => k.item.createdAt === t)!.reasons;
  const keptFor = (reason: string): string[] => r.keep.filter((k) => k.reasons.includes(reason)).map((k) => k.item.createdAt);

  it('keeps exactly the independently computed set, newest first, and removes the rest', () => {
    assert.equal(year.length, 8760);
    assert.equal(year[0]!.createdAt, '2025-11-26T13:00:00.000Z');
    assert.deepEqual(new Set(kept), expectedKept(year.map((s) => s.createdAt), policy));
    assert.deepEqual(kept, [...kept].sort().reverse(), 'keep is newest first');
    assert.equal(r.keep.length + r.remove.length, year.length);
    assert.equal(new Set([...kept, ...r.remove.map((s) => s.createdAt)]).size, year.length, 'keep and remove partition the input');
  });

  it('hand-checked facts', () => {
    // 24 hourly (covering last 3 and 2 of the daily ones) + 5 more daily + 2 more weekly + 11 more monthly + the oldest.
    assert.equal(kept.length, 43);
    assert.deepEqual(keptFor('last snapshot'), ['2026-11-26T12:00:00.000Z', '2026-11-26T11:00:00.000Z', '2026-11-26T10:00:00.000Z']);
    assert.equal(keptFor('hourly snapshot').length, 24);
    assert.equal(keptFor('hourly snapshot').at(-1), '2026-11-25T13:00:00.000Z');
    assert.deepEqual(keptFor('daily snapshot'), [
      '2026-11-26T12:00:00.000Z',
      '2026-11-25T23:00:00.000Z',
      '2026-11-24T23:00:00.000Z',
      '2026-11-23T23:00:00.000Z',
      '2026-11-22T23:00:00.000Z',
      '2026-11-21T23:00:00.000Z',
      '2026-11-20T23:00:00.000Z',
    ]);
    // ISO weeks start on Monday: the newest of each week is the current one, then Sundays 23:00.
    assert.deepEqual(keptFor('weekly snapshot'), [
      '2026-11-26T12:00:00.000Z',
      '2026-11-22T23:00:00.000Z',
      '2026-11-15T23:00:00.000Z',
      '2026-11-08T23:00:00.000Z',
    ]);
    assert.deepEqual(keptFor('monthly snapshot'), [
      '2026-11-26T12:00:00.000Z',
      '2026-10-31T23:00:00.000Z',
      '2026-09-30T23:00:00.000Z',
      '2026-08-31T23:00:00.000Z',
      '2026-07-31T23:00:00.000Z',
      '2026-06-30T23:00:00.000Z',
      '2026-05-31T23:00:00.000Z',
      '2026-04-30T23:00:00.000Z',
      '2026-03-31T23:00:00.000Z',
      '2026-02-28T23:00:00.000Z',
      '2026-01-31T23:00:00.000Z',
      '2025-12-31T23:00:00.000Z',
    ]);
    assert.deepEqual(reasonsOf('2026-11-26T12:00:00.000Z'), [
      'last snapshot', 'hourly snapshot', 'daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot',
    ]);
    // Only 2 years exist for yearly=3: the newest of 2025 (also the oldest kept month) and, as restic ≥ 0.17
    // does with a count left over, the oldest snapshot of all.
    assert.deepEqual(keptFor('yearly snapshot'), ['2026-11-26T12:00:00.000Z', '2025-12-31T23:00:00.000Z']);
    assert.deepEqual(reasonsOf('2025-12-31T23:00:00.000Z'), ['monthly snapshot', 'yearly snapshot']);
    assert.equal(kept.at(-2), '2025-12-31T23:00:00.000Z', 'the oldest bucket-kept one is the newest of the oldest kept month');
    assert.equal(kept.at(-1), '2025-11-26T13:00:00.000Z');
    assert.deepEqual(reasonsOf('2025-11-26T13:00:00.000Z'), ['oldest yearly snapshot']);
    // November 2025 is a 13th month: monthly=12 does not keep its newest snapshot.
    assert.ok(!kept.includes('2025-11-30T23:00:00.000Z'));
  });

  it('does not depend on input order', () => {
    const shuffled = year.map((s, i) => ({ s, k: (i * 7919) % year.length })).sort((a, b) => a.k - b.k).map((x) => x.s);
    assert.notDeepEqual(shuffled.slice(0, 10), year.slice(0, 10));
    assert.deepEqual(keptTimes(applyRetention(shuffled, policy, new Date(END))), kept);
  });

  it('agrees with the plain computation for other policies', () => {
    for (const text of ['daily=30', 'weekly=60', 'monthly=2,weekly=2', 'hourly=1000', 'yearly=1', 'last=1,within=36h', 'weekly=1,within=1d']) {
      const p = parseKeepPolicy(text);
      assert.deepEqual(new Set(keptTimes(applyRetention(year, p, new Date(END)))), expectedKept(year.map((s) => s.createdAt), p), text);
    }
    assert.equal(applyRetention(year, { weekly: 60 }, new Date(END)).keep.length, 54, '53 weeks touched + the oldest');
  });
});

describe('retention: buckets count existing snapshots, not calendar slots', () => {
  const times = [
    '2026-03-01T10:00:00.000Z',
    '2026-03-01T20:00:00.000Z',
    '2026-03-02T09:00:00.000Z',
    '2026-03-05T08:00:00.000Z',
    '2026-03-05T18:00:00.000Z',
    '2026-03-10T12:00:00.000Z',
    '2026-03-20T06:00:00.000Z',
    '2026-03-20T07:00:00.000Z',
  ];
  const snaps = times.map((t) => ({ id: `id-${t}`, createdAt: t }));
  const now = new Date('2026-03-20T12:00:00Z');

  it('daily=4 keeps the newest of the 4 newest days that have snapshots, across gaps', () => {
    const r = applyRetention(snaps, { daily: 4 }, now);
    assert.deepEqual(keptTimes(r), ['2026-03-20T07:00:00.000Z', '2026-03-10T12:00:00.000Z', '2026-03-05T18:00:00.000Z', '2026-03-02T09:00:00.000Z']);
    assert.deepEqual(r.remove.map((s) => s.createdAt), ['2026-03-20T06:00:00.000Z', '2026-03-05T08:00:00.000Z', '2026-03-01T20:00:00.000Z', '2026-03-01T10:00:00.000Z']);
    assert.deepEqual(new Set(keptTimes(r)), expectedKept(times, { daily: 4 }));
  });

  it('a count larger than the days that exist keeps every day and the oldest snapshot', () => {
    const r = applyRetention(snaps, { daily: 10 }, now);
    assert.deepEqual(keptTimes(r), [
      '2026-03-20T07:00:00.000Z', '2026-03-10T12:00:00.000Z', '2026-03-05T18:00:00.000Z', '2026-03-02T09:00:00.000Z',
      '2026-03-01T20:00:00.000Z', '2026-03-01T10:00:00.000Z',
    ]);
    assert.deepEqual(r.keep.at(-1)!.reasons, ['oldest daily snapshot']);
  });

  it('each rule counts on its own: one snapshot can use up a count of several rules', () => {
    const r = applyRetention(snaps, { last: 1, daily: 2 }, now);
    assert.deepEqual(r.keep.map((k) => [k.item.createdAt, k.reasons]), [
      ['2026-03-20T07:00:00.000Z', ['last snapshot', 'daily snapshot']],
      ['2026-03-10T12:00:00.000Z', ['daily snapshot']],
    ]);
  });

  it('weekly uses ISO weeks: Jan 1–3 2021 belong to 2020-W53', () => {
    const days = Array.from({ length: 17 }, (_, i) => iso(Date.parse('2020-12-25T12:00:00Z') + i * DAY)); // to 2021-01-10 (a Sunday)
    const r = applyRetention(days.map((t) => ({ id: t, createdAt: t })), { weekly: 3 }, new Date('2021-01-11T00:00:00Z'));
    assert.deepEqual(keptTimes(r), ['2021-01-10T12:00:00.000Z', '2021-01-03T12:00:00.000Z', '2020-12-27T12:00:00.000Z']);
    assert.equal(isoWeekKey(new Date('2021-01-03T23:59:59Z')), 202053);
    assert.equal(isoWeekKey(new Date('2021-01-04T00:00:00Z')), 202101);
    assert.equal(isoWeekKey(new Date('2024-12-30T00:00:00Z')), 202501);
    assert.equal(isoWeekKey(new Date('2026-11-26T12:00:00Z')), 202648);
    assert.equal(isoWeekKey(new Date('2026-01-01T00:00:00Z')), 202601);
  });

  it('buckets and schedules are UTC even when the host is not (TZ=Asia/Kolkata, +05:30)', () => {
    const saved = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata'; // Node applies a TZ change at once
    try {
      assert.equal(new Date('2026-03-01T18:40:00Z').getDate(), 2, 'the host time zone did change');
      const mk = (ts: string[]): Snap[] => ts.map((t) => ({ id: t, createdAt: t }));
      // UTC hours 12, 12, 11 (Kolkata: 18:10, 17:40, 17:20): the 12:10 one is not the newest of its hour.
      const h = applyRetention(mk(['2026-03-01T11:50:00.000Z', '2026-03-01T12:10:00.000Z', '2026-03-01T12:40:00.000Z']), { hourly: 2 }, now);
      assert.deepEqual(keptTimes(h), ['2026-03-01T12:40:00.000Z', '2026-03-01T11:50:00.000Z']);
      // The Kolkata day changes at 18:30Z: in UTC, 18:40 is still March 1st.
      const d = applyRetention(mk(['2026-03-01T18:00:00.000Z', '2026-03-01T18:20:00.000Z', '2026-03-01T18:40:00.000Z', '2026-03-02T01:00:00.000Z']), { daily: 2 }, now);
      assert.deepEqual(keptTimes(d), ['2026-03-02T01:00:00.000Z', '2026-03-01T18:40:00.000Z']);
      assert.equal(parseSchedule('0 3 * * *').next(new Date('2026-03-01T00:00:00Z')).toISOString(), '2026-03-01T03:00:00.000Z');
      assert.equal(parseSchedule('@daily').prev(new Date('2026-03-01T20:00:00Z')).toISOString(), '2026-03-01T00:00:00.000Z');
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('buckets are UTC days', () => {
    // 23:30Z and 00:30Z the next day are different UTC days, whatever the host's time zone.
    const two = ['2026-03-01T23:30:00.000Z', '2026-03-02T00:30:00.000Z'].map((t) => ({ id: t, createdAt: t }));
    assert.equal(applyRetention(two, { daily: 2 }, now).keep.length, 2);
    assert.equal(applyRetention(two, { monthly: 1 }, now).keep.length, 1);
  });
});

describe('retention: within', () => {
  const tenDays = hourly(10 * 24);

  it('within=2d keeps exactly the 48 hourly snapshots newer than the newest minus 2 days', () => {
    const r = applyRetention(tenDays, parseKeepPolicy('within=2d'), new Date(END));
    assert.equal(r.keep.length, 48);
    assert.equal(r.keep[0]!.item.createdAt, iso(END));
    assert.equal(r.keep.at(-1)!.item.createdAt, iso(END - 47 * HOUR));
    assert.deepEqual(r.keep[0]!.reasons, ['within 2d']);
    assert.equal(r.remove[0]!.createdAt, iso(END - 48 * HOUR), 'exactly 2 days older is not newer: removed');
  });

  it('boundary: 1 ms inside the window is kept', () => {
    const edge = [...tenDays, snap(END - 48 * HOUR + 1)];
    const r = applyRetention(edge, { within: 2 * DAY }, new Date(END));
    assert.equal(r.keep.length, 49);
    assert.equal(r.keep.at(-1)!.item.createdAt, iso(END - 48 * HOUR + 1));
  });

  it('is relative to the newest snapshot, not to now (as restic): stopped snapshots do not age out', () => {
    assert.equal(applyRetention(tenDays, { within: 2 * DAY }, new Date(END + 30 * DAY)).keep.length, 48);
  });

  it('a snapshot in the future (clock skew) does not move the window, and is kept', () => {
    const skewed = [...tenDays, snap(END + 5 * DAY)];
    const r = applyRetention(skewed, { within: 2 * DAY }, new Date(END + HOUR));
    assert.equal(r.keep.length, 49);
    assert.equal(r.keep[0]!.item.createdAt, iso(END + 5 * DAY));
  });

  it('combines with bucket rules: reasons list every rule that matched', () => {
    const r = applyRetention(tenDays, { within: 2 * DAY, daily: 5 }, new Date(END));
    // daily keeps END and 23:00 of the 4 days before; the 25th and 24th at 23:00 are inside the window already.
    assert.equal(r.keep.length, 48 + 2);
    assert.deepEqual(r.keep[0]!.reasons, ['within 2d', 'daily snapshot']);
  });
});

describe('retention: refusals', () => {
  const some = hourly(5);
  it('never applies an empty or malformed policy', () => {
    for (const p of [{}, { daily: 0 }, { last: -1 }, { hourly: 1.5 }, { weekly: NaN }, { within: 0 }, { within: -5 }, { within: Infinity }, { last: undefined }] as KeepPolicy[]) {
      assert.throws(() => applyRetention(some, p, new Date(END)), isInvalid, JSON.stringify(p));
    }
    assert.throws(() => applyRetention([], {}, new Date(END)), /empty/);
  });
  it('refuses an item whose createdAt is not a date', () => {
    assert.throws(() => applyRetention([...some, { id: 'bad', createdAt: 'yesterday' }], { last: 1 }, new Date(END)), (e: Error) => isInvalid(e) && /bad/.test(e.message));
  });
  it('an empty list is fine', () => {
    assert.deepEqual(applyRetention([], { last: 1 }, new Date(END)), { keep: [], remove: [] });
  });
});

describe('keep policy text', () => {
  it('parses every key, any order, with spaces', () => {
    assert.deepEqual(parseKeepPolicy('last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3'), { last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 3 });
    assert.deepEqual(parseKeepPolicy(' within = 2d , daily=7 '), { within: 2 * DAY, daily: 7 });
    assert.deepEqual(parseKeepPolicy('within=1d12h'), { within: 36 * HOUR });
    assert.deepEqual(parseKeepPolicy('last=1'), { last: 1 });
  });

  it('formats canonically and round-trips', () => {
    assert.equal(formatKeepPolicy({ within: 36 * HOUR, daily: 7, last: 1 }), 'last=1,daily=7,within=1d12h');
    assert.equal(formatKeepPolicy(parseKeepPolicy('yearly=3,monthly=12,weekly=4,daily=7,hourly=24,last=3')), 'last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3');
    for (const text of ['last=3', 'within=2d', 'within=90m', 'within=1h30m', 'within=1500ms', 'within=2w', 'daily=7,within=1d12h', 'last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3,within=7d']) {
      const p = parseKeepPolicy(text);
      assert.deepEqual(parseKeepPolicy(formatKeepPolicy(p)), p, text);
      assert.equal(formatKeepPolicy(parseKeepPolicy(formatKeepPolicy(p))), formatKeepPolicy(p), text);
    }
    assert.equal(formatKeepPolicy(parseKeepPolicy('within=2w')), 'within=14d');
  });

  it('refuses each bad input, naming the bad part and the accepted form', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['   ', /empty/],
      ['daily=x', /"daily=x": daily must be a positive integer/],
      ['daily=0', /"daily=0": daily must be a positive integer/],
      ['daily=-1', /daily must be a positive integer/],
      ['daily=1.5', /daily must be a positive integer/],
      ['daily=1e3', /daily must be a positive integer/],
      ['daily=', /daily must be a positive integer/],
      ['daily=99999999999999999999', /daily must be a positive integer/],
      ['daily', /"daily": a rule is key=value/],
      ['fortnightly=2', /"fortnightly=2": unknown key "fortnightly"/],
      ['Daily=7', /unknown key "Daily"/],
      ['daily=7,daily=3', /daily is given twice/],
      ['last=3,,daily=7', /empty rule/],
      ['last=3,', /empty rule/],
      ['within=2x', /"within=2x": within must be a duration/],
      ['within=', /within must be a duration/],
      ['within=0', /within must be longer than 0/],
      ['within=3', /within must be a duration/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseKeepPolicy(text), (e: Error) => {
        assert.ok(isInvalid(e), `${text}: code`);
        assert.match(e.message, re, text);
        assert.match(e.message, /last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3/, `${text}: example`);
        assert.match(e.message, /keys: last, hourly, daily, weekly, monthly, yearly, within/, `${text}: keys`);
        return true;
      }, text);
    }
  });
});

describe('schedule', () => {
  const at = (t: string): Date => new Date(t);
  const next = (s: string, t: string): string => parseSchedule(s).next(at(t)).toISOString();
  const prev = (s: string, t: string): string => parseSchedule(s).prev(at(t)).toISOString();

  it('@hourly', () => {
    assert.equal(next('@hourly', '2026-11-26T12:34:56Z'), '2026-11-26T13:00:00.000Z');
    assert.equal(prev('@hourly', '2026-11-26T12:34:56Z'), '2026-11-26T12:00:00.000Z');
    assert.equal(next('@hourly', '2026-11-26T12:00:00Z'), '2026-11-26T13:00:00.000Z', 'next is strictly after');
    assert.equal(prev('@hourly', '2026-11-26T12:00:00Z'), '2026-11-26T11:00:00.000Z', 'prev is strictly before');
    assert.equal(next('@hourly', '2026-12-31T23:59:59.999Z'), '2027-01-01T00:00:00.000Z');
  });

  it('0 3 * * * (UTC)', () => {
    assert.equal(next('0 3 * * *', '2026-11-26T12:00:00Z'), '2026-11-27T03:00:00.000Z');
    assert.equal(prev('0 3 * * *', '2026-11-26T12:00:00Z'), '2026-11-26T03:00:00.000Z');
    assert.equal(next('0 3 * * *', '2026-11-26T02:59:59.999Z'), '2026-11-26T03:00:00.000Z');
    assert.equal(prev('0 3 * * *', '2026-11-26T03:00:00Z'), '2026-11-25T03:00:00.000Z');
    assert.equal(next('0 3 * * *', '2026-03-29T00:30:00Z'), '2026-03-29T03:00:00.000Z', 'no DST shift (Europe changes on this day)');
  });

  it('*/15 * * * *', () => {
    assert.equal(next('*/15 * * * *', '2026-11-26T12:07:00Z'), '2026-11-26T12:15:00.000Z');
    assert.equal(prev('*/15 * * * *', '2026-11-26T12:07:00Z'), '2026-11-26T12:00:00.000Z');
    assert.equal(next('*/15 * * * *', '2026-11-26T12:45:00Z'), '2026-11-26T13:00:00.000Z');
    assert.equal(prev('*/15 * * * *', '2026-11-26T12:45:00.001Z'), '2026-11-26T12:45:00.000Z');
  });

  it('macros', () => {
    const from = '2026-11-26T12:00:00Z'; // Thursday
    assert.equal(next('@daily', from), '2026-11-27T00:00:00.000Z');
    assert.equal(next('@midnight', from), '2026-11-27T00:00:00.000Z');
    assert.equal(next('@weekly', from), '2026-11-29T00:00:00.000Z', 'Sunday');
    assert.equal(next('@monthly', from), '2026-12-01T00:00:00.000Z');
    assert.equal(next('@yearly', from), '2027-01-01T00:00:00.000Z');
    assert.equal(next('@annually', from), '2027-01-01T00:00:00.000Z');
    assert.equal(prev('@yearly', from), '2026-01-01T00:00:00.000Z');
    assert.equal(parseSchedule('  0   3 * * * ').text, '0 3 * * *');
    assert.equal(parseSchedule('@daily').text, '@daily');
  });

  it('refuses bad text with a clear message and an example', () => {
    for (const text of ['', '   ', '* * * *', '0 * * * * *', '0 0 * * * 2027', '61 * * * *', 'x * * * *', '*/0 * * * *', '@reboot', '@minutely', '@every 5m', '0 0 30 2 *', 'H * * * *', 'hourly']) {
      assert.throws(() => parseSchedule(text), (e: Error) => {
        assert.ok(isInvalid(e), `${text}: code`);
        assert.match(e.message, /snapshot-schedule/, text);
        assert.match(e.message, /"0 \* \* \* \*"/, `${text}: example`);
        assert.match(e.message, /@hourly/, `${text}: macros`);
        return true;
      }, text);
    }
    assert.throws(() => parseSchedule('* * * *'), /has 4 fields, not 5/);
    assert.throws(() => parseSchedule('@reboot'), /unknown macro @reboot/);
  });
});

describe('dueRun: missed runs', () => {
  const hourlySchedule = parseSchedule('@hourly');
  const created = at('2026-11-26T10:20:00Z');
  function at(t: string): Date {
    return new Date(t);
  }
  const due = (lastRun: string | undefined, now: string, schedule = hourlySchedule, createdAt = created): string | undefined =>
    dueRun(schedule, lastRun === undefined ? undefined : at(lastRun), at(now), createdAt)?.toISOString();

  it('nothing runs before the first slot after creation', () => {
    assert.equal(due(undefined, '2026-11-26T10:20:00Z'), undefined);
    assert.equal(due(undefined, '2026-11-26T10:59:59.999Z'), undefined);
    assert.equal(due(undefined, '2026-11-26T11:00:00.000Z'), '2026-11-26T11:00:00.000Z', 'a slot at exactly now is due');
    assert.equal(due(undefined, '2026-11-26T11:30:00Z'), '2026-11-26T11:00:00.000Z');
    // created exactly on a slot: that slot is not "after" creation
    assert.equal(due(undefined, '2026-11-26T10:00:00Z', hourlySchedule, at('2026-11-26T10:00:00Z')), undefined);
    const daily3 = parseSchedule('0 3 * * *');
    assert.equal(due(undefined, '2026-11-27T02:59:00Z', daily3, at('2026-11-26T12:00:00Z')), undefined);
    assert.equal(due(undefined, '2026-11-27T03:00:30Z', daily3, at('2026-11-26T12:00:00Z')), '2026-11-27T03:00:00.000Z');
  });

  it('no second run in the same slot', () => {
    assert.equal(due('2026-11-26T11:00:00Z', '2026-11-26T11:30:00Z'), undefined, 'lastRun = the slot');
    assert.equal(due('2026-11-26T11:00:03Z', '2026-11-26T11:59:59Z'), undefined, 'lastRun = when it ran');
    assert.equal(due('2026-11-26T11:00:03Z', '2026-11-26T12:00:00Z'), '2026-11-26T12:00:00.000Z');
  });

  it('three days of downtime give ONE catch-up run, for the latest slot, then the regular schedule', () => {
    assert.equal(due('2026-11-26T11:00:00Z', '2026-11-29T11:37:00Z'), '2026-11-29T11:00:00.000Z');
    // ferryd is back at 11:37 on the 29th and checks every minute until 13:30: the 11:00 catch-up, then 12:00 and 13:00 on time.
    let lastRun: Date | undefined = at('2026-11-26T11:00:00Z');
    const runs: string[] = [];
    for (let t = Date.parse('2026-11-29T11:37:00Z'); t <= Date.parse('2026-11-29T13:30:00Z'); t += 60_000) {
      const slot = dueRun(hourlySchedule, lastRun, new Date(t), created);
      if (slot) {
        runs.push(`${slot.toISOString()} at ${iso(t)}`);
        lastRun = slot;
      }
    }
    assert.deepEqual(runs, [
      '2026-11-29T11:00:00.000Z at 2026-11-29T11:37:00.000Z',
      '2026-11-29T12:00:00.000Z at 2026-11-29T12:00:00.000Z',
      '2026-11-29T13:00:00.000Z at 2026-11-29T13:00:00.000Z',
    ]);
  });

  it('a day of minute ticks runs a */15 schedule 96 times, each slot once', () => {
    const s = parseSchedule('*/15 * * * *');
    let lastRun: Date | undefined;
    const slots: number[] = [];
    const start = Date.parse('2026-11-26T00:00:30Z');
    for (let t = start; t < start + DAY; t += 60_000) {
      const slot = dueRun(s, lastRun, new Date(t), new Date(start - 30_000 - 1));
      if (slot) {
        slots.push(slot.getTime());
        lastRun = new Date(t); // recorded as the time it ran: works the same
      }
    }
    assert.equal(slots.length, 96);
    assert.equal(new Set(slots).size, 96);
    assert.ok(slots.every((ms, i) => ms === Date.parse('2026-11-26T00:00:00Z') + i * 15 * 60_000));
  });
});
