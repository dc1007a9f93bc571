/**
 * Schedules for scheduled snapshots and backups: standard 5-field cron, evaluated in UTC.
 *
 *   minute hour day-of-month month day-of-week     e.g. "0 * * * *", "*\/15 * * * *", "30 3 * * 1-5"
 *
 * plus the macros @hourly, @daily (= @midnight), @weekly (Sunday 00:00), @monthly, @yearly (= @annually).
 * Names (JAN, MON), ranges, lists, steps, L and # work as in cron-parser; when both day-of-month and
 * day-of-week are restricted, a day matching either runs (classic cron). No seconds field, no year field,
 * no Jenkins-style H (it would need a hash seed to be stable).
 */
import { CronExpressionParser, type CronExpression } from 'cron-parser';
import { FerryError } from '../util/errors.js';
import { shown as quoted } from '../util/shown.js';

export interface Schedule {
  /** The text as given (trimmed, spaces collapsed), e.g. "@daily" or "0 3 * * *". */
  text: string;
  /** The first scheduled time strictly after `after`. */
  next(after: Date): Date;
  /** The last scheduled time strictly before `before`. */
  prev(before: Date): Date;
}

const macros: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

const HOW = `write it as 5 cron fields "minute hour day-of-month month day-of-week" in UTC, like "0 * * * *" (hourly), "*/15 * * * *" or "0 3 * * *" (03:00 daily), or one of ${Object.keys(macros).join(' ')}`;

function invalid(text: string, problem: string): FerryError {
  return new FerryError('invalid', `snapshot-schedule ${quoted(text)}: ${problem}; ${HOW}`);
}

/** Parse a schedule; throws FerryError('invalid') naming the problem and showing examples. */
export function parseSchedule(text: string): Schedule {
  if (typeof text !== 'string') throw invalid(String(text), 'not text');
  const shown = text.trim().replace(/\s+/g, ' ');
  if (shown === '') throw invalid(text, 'is empty');
  let cron: string;
  if (shown.startsWith('@')) {
    const m = macros[shown.toLowerCase()];
    if (m === undefined) throw invalid(shown, `unknown macro ${shown.length > 64 ? quoted(shown) : shown}`);
    cron = m;
  } else {
    const fields = shown.split(' ');
    if (fields.length !== 5) throw invalid(shown, `has ${fields.length} field${fields.length === 1 ? '' : 's'}, not 5`);
    if (fields.some((f) => f.split(',').some((p) => /^h/i.test(p)))) throw invalid(shown, 'H (hashed) values are not supported');
    cron = shown;
  }
  const at = (d: Date): CronExpression => {
    if (!Number.isFinite(d.getTime())) throw new FerryError('invalid', `snapshot-schedule "${shown}": not a valid date`);
    return CronExpressionParser.parse(cron, { currentDate: d, tz: 'UTC' });
  };
  try {
    // Refuse now, not at the first run, what can never run (e.g. "0 0 30 2 *") or does not parse.
    at(new Date(Date.UTC(2000, 0, 1))).next();
  } catch (err) {
    throw invalid(shown, err instanceof Error ? err.message : String(err));
  }
  return {
    text: shown,
    next: (after) => at(after).next().toDate(),
    prev: (before) => at(before).prev().toDate(),
  };
}

/**
 * Which scheduled run is due now, if any: the policy for missed runs.
 *
 * The due slot is the most recent scheduled time t ≤ now. It runs if it is strictly after the last run
 * (`lastRun`, the slot time of the last run, or when it happened), or, for a schedule that never ran, after
 * `createdAt`: a schedule created at 10:20 with "@hourly" first runs at 11:00, not at once for 10:00.
 *
 * Missed runs are not replayed one by one: if ferryd was down for three days, every slot missed meanwhile
 * collapses into ONE catch-up run, for the latest slot (t), as soon as ferryd is back; the next run is at the
 * next regular slot. Once that run has happened (lastRun ≥ t), the same slot never runs again.
 *
 * Returns t (record it as the run's slot, and as lastRun once done), or undefined when nothing is due.
 */
export function dueRun(schedule: Schedule, lastRun: Date | undefined, now: Date, createdAt: Date): Date | undefined {
  // prev() is strict; cron slots are on whole minutes, so 1 ms past now finds a slot at exactly now.
  const t = schedule.prev(new Date(now.getTime() + 1));
  const since = lastRun ?? createdAt;
  return t.getTime() > since.getTime() ? t : undefined;
}
