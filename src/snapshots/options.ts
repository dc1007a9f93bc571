/** The volume options of snapshots: clone from a snapshot, scheduled snapshots and their retention. */
import { FerryError } from '../util/errors.js';
import { shown } from '../util/shown.js';
import { parseSchedule } from '../policy/schedule.js';
import { formatKeepPolicy, parseKeepPolicy } from '../policy/retention.js';
import type { OptionSet } from '../volumes/options.js';

export const snapshotOptions: OptionSet<'from' | 'snapshot-schedule' | 'snapshot-keep'> = {
  parsers: {
    from: (v, k) => {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+@[a-zA-Z0-9][a-zA-Z0-9_.:-]*$/.test(v)) {
        throw new FerryError('invalid', `option ${k}=${shown(v)}: write it VOLUME@SNAPSHOT, e.g. from=db@nightly`);
      }
      return v;
    },
    'snapshot-schedule': (v) => parseSchedule(v).text,
    'snapshot-keep': (v) => formatKeepPolicy(parseKeepPolicy(v)),
  },
  check: (o) => {
    if (o['snapshot-keep'] !== undefined && o['snapshot-schedule'] === undefined) {
      throw new FerryError('invalid', 'option snapshot-keep needs snapshot-schedule too (it thins what the schedule makes), e.g. -o snapshot-schedule=@hourly -o snapshot-keep=last=3,hourly=24');
    }
  },
};
