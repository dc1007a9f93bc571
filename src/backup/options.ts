/** The volume options of backups: a new volume from a backup, scheduled backups, their target and retention. */
import { FerryError } from '../util/errors.js';
import { shown } from '../util/shown.js';
import { parseSchedule } from '../policy/schedule.js';
import { formatKeepPolicy, parseKeepPolicy } from '../policy/retention.js';
import type { OptionSet } from '../volumes/options.js';
import { parseBackupUrl } from './url.js';

export const backupOptions: OptionSet<'backup' | 'backup-schedule' | 'backup-target' | 'backup-keep' | 'backup-keep-base'> = {
  parsers: {
    backup: (v, k) => {
      if (!parseBackupUrl(v).backup) throw new FerryError('invalid', `option ${k}=${shown(v)}: a backup URL ends in ?backup=ID&volume=NAME; \`ferry backup ls --target T\` lists them`);
      return v;
    },
    'backup-schedule': (v) => parseSchedule(v).text,
    'backup-target': (v, k) => {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v) && !/^(file|s3):/.test(v)) throw new FerryError('invalid', `option ${k}=${shown(v)}: a configured target name or a file:// or s3:// URL`);
      return v;
    },
    'backup-keep': (v) => formatKeepPolicy(parseKeepPolicy(v)),
    'backup-keep-base': (v, k) => {
      if (v !== 'true' && v !== 'false') throw new FerryError('invalid', `option ${k}=${JSON.stringify(v)}: expected true (keep the snapshot a backup read, so the next one is quick) or false (remove it: no full copy kept on ext4, the next backup reads everything again)`);
      return v;
    },
  },
  check: (o) => {
    if ((o['backup-schedule'] === undefined) !== (o['backup-target'] === undefined)) {
      throw new FerryError('invalid', 'options backup-schedule and backup-target go together, e.g. -o backup-schedule=@daily -o backup-target=nas');
    }
    if (o['backup-keep'] !== undefined && o['backup-schedule'] === undefined) {
      throw new FerryError('invalid', 'option backup-keep needs backup-schedule and backup-target too, e.g. -o backup-schedule=@daily -o backup-target=nas -o backup-keep=daily=7,weekly=4');
    }
    if (o.backup !== undefined && o.from !== undefined) throw new FerryError('invalid', 'options backup and from exclude each other: a volume starts from a backup or from a snapshot');
  },
};
