import { FerryError } from '../util/errors.js';
import { shown } from '../util/shown.js';
import { parseSchedule } from '../policy/schedule.js';
import { formatKeepPolicy, parseKeepPolicy } from '../policy/retention.js';
import { parseBackupUrl } from '../backup/url.js';

/** What `-o key=value` may say at create time. Parsed once, stored in the catalog. */
// The volume options cross the API: defined in the wire contract, used here.
import type { AccessMode, VolumeOptions } from '../wire/types.js';
export type { AccessMode, VolumeOptions };
export const ACCESS_MODES: readonly AccessMode[] = ['rwx', 'rwo', 'rox'];

type Parser = (value: string, key: string) => string | number;

function intInRange(value: string, key: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xfffffffe) {
    throw new FerryError('invalid', `option ${key}=${shown(value)}: expected a number from 0 to 4294967294`);
  }
  return Number(value);
}

const parsers: Record<keyof VolumeOptions, Parser> = {
  access: (v, k) => {
    if (!(ACCESS_MODES as readonly string[]).includes(v)) {
      throw new FerryError('invalid', `option ${k}=${shown(v)}: expected rwx (many hosts read and write), rwo (one host at a time) or rox (many hosts, read-only)`);
    }
    return v;
  },
  pool: (v, k) => {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v)) throw new FerryError('invalid', `option ${k}=${shown(v)}: not a pool name`);
    return v;
  },
  from: (v, k) => {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+@[a-zA-Z0-9][a-zA-Z0-9_.:-]*$/.test(v)) {
      throw new FerryError('invalid', `option ${k}=${shown(v)}: write it VOLUME@SNAPSHOT, e.g. from=db@nightly`);
    }
    return v;
  },
  'snapshot-schedule': (v) => parseSchedule(v).text,
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
  'snapshot-keep': (v) => formatKeepPolicy(parseKeepPolicy(v)),
  uid: intInRange,
  gid: intInRange,
  mode: (v, k) => {
    if (!/^0?[0-7]{3,4}$/.test(v)) {
      throw new FerryError('invalid', `option ${k}=${shown(v)}: expected octal permissions such as 0755 or 1777`);
    }
    return parseInt(v, 8);
  },
};

export const ACCEPTED_OPTIONS = Object.keys(parsers).sort();

/** Validate the options Docker or the API passed; unknown keys are refused with the list of accepted ones. */
export function parseVolumeOptions(opts: unknown): VolumeOptions {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts)) {
    throw new FerryError('invalid', 'volume options must be an object of key=value strings');
  }
  const out: Record<string, string | number> = {};
  for (const [key, raw] of Object.entries(opts as Record<string, unknown>)) {
    // own keys only: "__proto__" or "constructor" must not find Object.prototype's members
    const parse = Object.hasOwn(parsers, key) ? (parsers as Record<string, Parser>)[key] : undefined;
    if (!parse) {
      throw new FerryError(
        'invalid',
        `unknown volume option ${shown(key)}; accepted options: ${ACCEPTED_OPTIONS.join(', ')}`,
      );
    }
    if (typeof raw !== 'string' && typeof raw !== 'number') {
      throw new FerryError('invalid', `option ${key}: expected a string value`);
    }
    out[key] = parse(String(raw), key);
  }
  if (out['snapshot-keep'] !== undefined && out['snapshot-schedule'] === undefined) {
    throw new FerryError('invalid', 'option snapshot-keep needs snapshot-schedule too (it thins what the schedule makes), e.g. -o snapshot-schedule=@hourly -o snapshot-keep=last=3,hourly=24');
  }
  if ((out['backup-schedule'] === undefined) !== (out['backup-target'] === undefined)) {
    throw new FerryError('invalid', 'options backup-schedule and backup-target go together, e.g. -o backup-schedule=@daily -o backup-target=nas');
  }
  if (out['backup-keep'] !== undefined && out['backup-schedule'] === undefined) {
    throw new FerryError('invalid', 'option backup-keep needs backup-schedule and backup-target too, e.g. -o backup-schedule=@daily -o backup-target=nas -o backup-keep=daily=7,weekly=4');
  }
  if (out.backup !== undefined && out.from !== undefined) throw new FerryError('invalid', 'options backup and from exclude each other: a volume starts from a backup or from a snapshot');
  return out as VolumeOptions;
}
