/**
 * Backup URLs, as Convoy spells them: the target plus the backup's id and volume name in the query,
 * e.g. `file:///srv/backups/ferry?backup=ID&volume=NAME` or `s3://bucket/prefix?backup=ID&volume=NAME`.
 */
import { FerryError } from '../util/errors.js';
import { shown } from '../util/shown.js';

export interface BackupUrl {
  /** The repository, without query: file:///srv/backups/ferry or s3://bucket/prefix. */
  target: string;
  backup?: string;
  volume?: string;
}

export function parseBackupUrl(url: string): BackupUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FerryError('invalid', `${shown(url)} is not a backup URL; expected file:///path?backup=ID&volume=NAME or s3://bucket/prefix?backup=ID&volume=NAME`);
  }
  if (u.protocol !== 'file:' && u.protocol !== 's3:') throw new FerryError('invalid', `backup URL ${shown(url)}: unsupported scheme ${u.protocol}; expected file:///path or s3://bucket/prefix`);
  // the same rule as opening the target (target.ts), so a restore with such a URL is refused before its job starts
  if (u.protocol === 'file:' && u.host && u.host !== 'localhost') throw new FerryError('invalid', `backup URL ${shown(url)} names a host (${shown(u.host)}); use file:///absolute/path`);
  for (const k of u.searchParams.keys()) {
    if (k !== 'backup' && k !== 'volume') throw new FerryError('invalid', `${shown(url)}: unknown parameter ${shown(k)}; accepted: backup, volume`);
  }
  const backup = u.searchParams.get('backup') ?? undefined;
  const volume = u.searchParams.get('volume') ?? undefined;
  if (backup !== undefined && !/^[0-9a-f]{4,64}$/.test(backup)) {
    const why = /^[0-9a-f]{1,3}$/.test(backup) ? 'is too short: give at least 4 characters of it' : 'is not hexadecimal';
    throw new FerryError('invalid', `${shown(url)}: backup id ${shown(backup)} ${why} (\`ferry backup ls --target T\` lists each backup's URL)`);
  }
  u.search = '';
  u.hash = '';
  const target = u.href.replace(/\/+$/, '');
  return { target: u.protocol === 'file:' && target === 'file://' ? 'file:///' : target, backup, volume };
}

export function formatBackupUrl(target: string, backup: string, volume: string): string {
  const base = target.replace(/\?.*$/, '').replace(/\/+$/, '');
  return `${base}?backup=${encodeURIComponent(backup)}&volume=${encodeURIComponent(volume)}`;
}
