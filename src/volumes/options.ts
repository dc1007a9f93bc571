/** Volume options (`-o key=value`): the core ones (access, pool, owner, mode, an image's filesystem) and how features add theirs. */
import { FerryError } from '../util/errors.js';
import { shown } from '../util/shown.js';
// The volume options cross the API: defined in the wire contract, used here.
import type { AccessMode, VolumeOptions } from '../wire/types.js';
export type { AccessMode, VolumeOptions };
export const ACCESS_MODES: readonly AccessMode[] = ['rwx', 'rwo', 'rox'];

/** Checks one value; returns what is stored in the catalog. */
export type OptionParser = (value: string, key: string) => string | number;

/**
 * The options one feature understands (the core here, snapshots in snapshots/options.ts, backups in
 * backup/options.ts), and a check of how they go together, run once all options are parsed.
 */
export interface OptionSet<K extends keyof VolumeOptions = keyof VolumeOptions> {
  parsers: Record<K, OptionParser>;
  check?: (opts: VolumeOptions) => void;
}

/** Validates the options Docker or the API passed; unknown keys are refused with the list of accepted ones. */
export type VolumeOptionsParser = ((opts: unknown) => VolumeOptions) & { accepted: readonly string[] };

function intInRange(value: string, key: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xfffffffe) {
    throw new FerryError('invalid', `option ${key}=${shown(value)}: expected a number from 0 to 4294967294`);
  }
  return Number(value);
}

export const coreOptions: OptionSet<'access' | 'pool' | 'uid' | 'gid' | 'mode' | 'fs'> = {
  parsers: {
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
    fs: (v, k) => {
      if (v !== 'ext4' && v !== 'xfs') throw new FerryError('invalid', `option ${k}=${shown(v)}: expected ext4 or xfs (the filesystem of an image volume)`);
      return v;
    },
    uid: intInRange,
    gid: intInRange,
    mode: (v, k) => {
      if (!/^0?[0-7]{3,4}$/.test(v)) {
        throw new FerryError('invalid', `option ${k}=${shown(v)}: expected octal permissions such as 0755 or 1777`);
      }
      return parseInt(v, 8);
    },
  },
};

/** One parser for the options of all the given sets. */
export function volumeOptionsParser(sets: ReadonlyArray<{ parsers: Partial<Record<keyof VolumeOptions, OptionParser>>; check?: (opts: VolumeOptions) => void }>): VolumeOptionsParser {
  const parsers: Record<string, OptionParser> = Object.assign({}, ...sets.map((s) => s.parsers)) as Record<string, OptionParser>;
  const accepted = Object.keys(parsers).sort();
  const parse = (opts: unknown): VolumeOptions => {
    if (opts === undefined || opts === null) return {};
    if (typeof opts !== 'object' || Array.isArray(opts)) {
      throw new FerryError('invalid', 'volume options must be an object of key=value strings');
    }
    const out: Record<string, string | number> = {};
    for (const [key, raw] of Object.entries(opts as Record<string, unknown>)) {
      // own keys only: "__proto__" or "constructor" must not find Object.prototype's members
      const parseOne = Object.hasOwn(parsers, key) ? parsers[key] : undefined;
      if (!parseOne) {
        throw new FerryError('invalid', `unknown volume option ${shown(key)}; accepted options: ${accepted.join(', ')}`);
      }
      if (typeof raw !== 'string' && typeof raw !== 'number') {
        throw new FerryError('invalid', `option ${key}: expected a string value`);
      }
      out[key] = parseOne(String(raw), key);
    }
    for (const s of sets) s.check?.(out as VolumeOptions);
    return out as VolumeOptions;
  };
  return Object.assign(parse, { accepted });
}
