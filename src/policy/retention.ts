/**
 * Retention of scheduled snapshots and backups: which to keep, which to remove.
 *
 * The policy and its evaluation follow restic's `forget` (the --keep-* options of restic ≥ 0.17):
 *
 * - The snapshots are sorted newest first (a stable sort: snapshots with the same time keep their input order).
 * - `last=n` keeps the n newest snapshots.
 * - `hourly|daily|weekly|monthly|yearly=n`: each rule walks the snapshots newest to oldest and keeps a snapshot
 *   when its bucket (hour, day, ISO 8601 week, month, year) differs from the bucket of the last snapshot that
 *   rule kept, until it has kept n. So the newest snapshot of each bucket is kept, buckets count the snapshots
 *   that exist (a day without snapshots uses up nothing: daily=7 keeps the last 7 days that HAVE snapshots,
 *   not the last 7 calendar days), and each rule counts independently of the others (one snapshot can be
 *   the hourly, daily and monthly one at once, and is counted by each rule).
 * - If a bucket rule still has count left when it reaches the oldest snapshot, that oldest snapshot is kept
 *   too (restic ≥ 0.17: the history is kept as long as the policy allows; reason "oldest <rule> snapshot").
 * - `within=duration` keeps every snapshot strictly newer than (newest snapshot − duration). As in restic the
 *   reference is the newest snapshot that is not in the future (createdAt ≤ now), NOT now itself: if snapshots
 *   stop being taken, `within` keeps protecting the last ones instead of letting them age out.
 * - A snapshot is kept if any rule keeps it, with every matching rule as a reason.
 *
 * Buckets are computed in UTC, always (so a policy means the same on every host, whatever its TZ, and
 * daylight-saving changes never merge or split hours). restic uses the snapshots' local time instead.
 *
 * Differences from restic: no "unlimited" counts, no --keep-tag or --keep-within-<bucket>, and `within` is written
 * with Ferry's duration units (ms, s, m = minutes, h, d, w; restic's `m` means months), e.g. within=2d or 36h.
 * An empty policy is refused (restic keeps everything then; here it is always a configuration mistake).
 */
import { parseDuration } from '../util/duration.js';
import { FerryError } from '../util/errors.js';
import { shown as quoted } from '../util/shown.js';

export interface KeepPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Milliseconds: keep every snapshot newer than the newest one minus this. */
  within?: number;
}

const countKeys = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type CountKey = (typeof countKeys)[number];
const allKeys = [...countKeys, 'within'] as const;
type Key = (typeof allKeys)[number];

const EXAMPLE = 'last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3';
const HOW = `write it like ${EXAMPLE} (keys: ${allKeys.join(', ')}; within takes a duration such as within=2d)`;

function invalid(what: string, problem: string): FerryError {
  return new FerryError('invalid', `snapshot-keep ${what}: ${problem}; ${HOW}`);
}

function isKey(k: string): k is Key {
  return (allKeys as readonly string[]).includes(k);
}

/** Parse "last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=3,within=2d" (any subset, any order, at least one). */
export function parseKeepPolicy(text: string): KeepPolicy {
  if (typeof text !== 'string' || text.trim() === '') throw invalid('is empty', 'a policy needs at least one rule');
  const policy: KeepPolicy = {};
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') throw invalid(quoted(text), 'has an empty rule (two commas, or a comma at an end)');
    const eq = part.indexOf('=');
    if (eq < 0) throw invalid(quoted(part), 'a rule is key=value');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!isKey(key)) throw invalid(quoted(part), `unknown key ${quoted(key)}`);
    if (policy[key] !== undefined) throw invalid(quoted(text), `${key} is given twice`);
    if (key === 'within') {
      let ms: number;
      try {
        ms = parseDuration(value, 'within');
      } catch {
        throw invalid(quoted(part), 'within must be a duration such as 2d, 36h or 90m');
      }
      if (!(ms > 0)) throw invalid(quoted(part), 'within must be longer than 0');
      policy.within = ms;
    } else {
      const n = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n) || n <= 0) throw invalid(quoted(part), `${key} must be a positive integer`);
      policy[key] = n;
    }
  }
  return policy;
}

/** Exact duration text that parseDuration reads back to the same milliseconds: 2d, 1d12h, 1h30m, 1500ms. */
export function formatKeepDuration(ms: number): string {
  const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];
  let rest = Math.round(ms);
  let out = '';
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${u}`;
    rest -= n * size;
  }
  return out || '0';
}

/** Canonical text: keys in the order last, hourly, daily, weekly, monthly, yearly, within. */
export function formatKeepPolicy(p: KeepPolicy): string {
  const parts: string[] = [];
  for (const k of countKeys) if (p[k] !== undefined) parts.push(`${k}=${p[k]}`);
  if (p.within !== undefined) parts.push(`within=${formatKeepDuration(p.within)}`);
  return parts.join(',');
}

/** Refuse a policy that is empty or has a value parseKeepPolicy would not produce (0, negative, NaN...). */
function checkPolicy(p: KeepPolicy): void {
  let rules = 0;
  for (const k of countKeys) {
    const v = p[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) throw invalid(`${k}=${v}`, `${k} must be a positive integer`);
    rules++;
  }
  if (p.within !== undefined) {
    if (!Number.isFinite(p.within) || p.within <= 0) throw invalid(`within=${p.within}`, 'within must be a duration longer than 0');
    rules++;
  }
  if (rules === 0) throw invalid('is empty', 'refusing to apply an empty policy, which would say nothing about what to keep');
}

const DAY = 86_400_000;

/** ISO 8601 week of a UTC instant, as year*100 + week (the ISO year, which differs from the calendar year around New Year). */
export function isoWeekKey(d: Date): number {
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const weekday = (d.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(day + (3 - weekday) * DAY); // the ISO year is the year of the week's Thursday
  const isoYear = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(isoYear, 0, 1)) / (7 * DAY));
  return isoYear * 100 + week;
}

type Bucketer = (d: Date, index: number) => number;

const bucketers: Record<CountKey, Bucketer> = {
  last: (_d, i) => i, // every snapshot is its own bucket
  hourly: (d) => ((d.getUTCFullYear() * 100 + d.getUTCMonth() + 1) * 100 + d.getUTCDate()) * 100 + d.getUTCHours(),
  daily: (d) => (d.getUTCFullYear() * 100 + d.getUTCMonth() + 1) * 100 + d.getUTCDate(),
  weekly: isoWeekKey,
  monthly: (d) => d.getUTCFullYear() * 100 + d.getUTCMonth() + 1,
  yearly: (d) => d.getUTCFullYear(),
};

export interface RetentionResult<T> {
  /** Newest first, each with the rules that keep it ("last snapshot", "daily snapshot", "within 2d", ...). */
  keep: Array<{ item: T; reasons: string[] }>;
  /** Newest first. */
  remove: T[];
}

/**
 * Apply `policy` to `items` (all the snapshots of one volume, or whatever group the caller retains together).
 * `now` only decides which snapshots are "in the future" (createdAt > now), which do not count as the newest
 * for `within`; buckets are always UTC (`timeZone` exists to make that explicit at call sites).
 * Throws FerryError('invalid') on an empty or malformed policy, or an item whose createdAt is not a date,
 * rather than deleting on a guess.
 */
export function applyRetention<T extends { id: string; createdAt: string }>(
  items: T[],
  policy: KeepPolicy,
  now: Date,
  timeZone: 'UTC' = 'UTC',
): RetentionResult<T> {
  checkPolicy(policy);
  if (timeZone !== 'UTC') throw new FerryError('invalid', `retention time zone "${String(timeZone)}" is not supported; buckets are UTC`);
  const nowMs = now.getTime();
  if (!Number.isFinite(nowMs)) throw new FerryError('invalid', 'retention: now is not a valid date');

  const dated = items.map((item) => {
    const ms = Date.parse(item.createdAt);
    if (!Number.isFinite(ms)) {
      throw new FerryError('invalid', `retention: snapshot ${item.id} has createdAt "${item.createdAt}", which is not a date; nothing was removed`);
    }
    return { item, ms, date: new Date(ms) };
  });
  dated.sort((a, b) => b.ms - a.ms); // stable: equal times keep their input order

  const rules = countKeys
    .filter((k) => policy[k] !== undefined)
    .map((k) => ({ key: k, left: policy[k]!, last: undefined as number | undefined, bucket: bucketers[k] }));

  // within: relative to the newest snapshot that is not in the future (restic's findLatestTimestamp).
  let withinAfter: number | undefined;
  let withinReason = '';
  if (policy.within !== undefined) {
    let newest = -Infinity;
    for (const s of dated) if (s.ms <= nowMs && s.ms > newest) newest = s.ms;
    withinAfter = newest - policy.within; // -Infinity if every snapshot is in the future: keep them all
    withinReason = `within ${formatKeepDuration(policy.within)}`;
  }

  const keep: RetentionResult<T>['keep'] = [];
  const remove: T[] = [];
  dated.forEach((s, index) => {
    const reasons: string[] = [];
    if (withinAfter !== undefined && s.ms > withinAfter) reasons.push(withinReason);
    const oldest = index === dated.length - 1;
    for (const r of rules) {
      if (r.left <= 0) continue;
      const b = r.bucket(s.date, index);
      if (b !== r.last) {
        r.last = b;
        r.left--;
        reasons.push(`${r.key} snapshot`);
      } else if (oldest) {
        // The rule has count left but the oldest snapshot shares the last kept bucket: keep it as well.
        r.left--;
        reasons.push(`oldest ${r.key} snapshot`);
      }
    }
    if (reasons.length > 0) keep.push({ item: s.item, reasons });
    else remove.push(s.item);
  });
  return { keep, remove };
}
