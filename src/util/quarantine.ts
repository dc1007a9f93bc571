/** Files of ferryd's own state that cannot be read: moved aside (never deleted), logged and listed as state warnings. */
import { link, lstat, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir } from './atomic.js';
import { errorMessage, isErrno } from './errors.js';
import type { StateWarnings } from './state-warnings.js';

/** `FILE.corrupt-20261201T223242.123Z`: beside the original, so it stays on the same filesystem and next to what it described. */
export const CORRUPT_MARK = '.corrupt-';

export function isAside(entry: string): boolean {
  return entry.includes(CORRUPT_MARK);
}

const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '');

/** A parser's complaint quotes the bad bytes: keep it printable and short. */
function reasonOf(why: unknown): string {
  const s = errorMessage(why).replace(/[^\x20-\x7e]/g, '?');
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}

export class Quarantine {
  constructor(
    readonly warnings: StateWarnings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Move `file` aside to `FILE.corrupt-TIME` (a rename; an existing name is never overwritten), log it and
   * add a warning that names the file, why it was unreadable and what ferryd assumed instead.
   * Returns the new path, or undefined when the file was gone already (somebody else moved it).
   */
  async moveAside(file: string, why: unknown, assumed: string): Promise<string | undefined> {
    let aside = `${file}${CORRUPT_MARK}${stamp(this.now())}`;
    for (let n = 2; await exists(aside); n++) aside = `${file}${CORRUPT_MARK}${stamp(this.now())}-${n}`;
    try {
      // link then unlink: fails instead of replacing, should a same-named file appear meanwhile
      await link(file, aside);
      await unlink(file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      if (!isErrno(err, 'EPERM') && !isErrno(err, 'ENOTSUP')) throw err;
      await rename(file, aside); // a filesystem without hard links
    }
    await fsyncDir(dirname(file)).catch(() => undefined);
    const reason = reasonOf(why);
    this.log.error({ file, movedTo: aside, reason, assumed }, 'unreadable state file moved aside');
    this.warnings.add(`corrupt:${file}`, { code: 'corrupt_file', file: aside, message: `${file} could not be read (${reason}); moved aside to ${aside}. ${assumed}` });
    return aside;
  }

  /** A file that is not ours to move (another node's, in a shared pool): only log and warn, once per file. */
  unreadable(file: string, why: unknown, assumed: string): void {
    const key = `unreadable:${file}`;
    if (this.warnings.list().some((w) => w.file === file && w.code === 'unreadable_file')) return;
    this.log.warn({ file, reason: reasonOf(why), assumed }, 'unreadable state file of another node');
    this.warnings.add(key, { code: 'unreadable_file', file, message: `${file} could not be read (${reasonOf(why)}). ${assumed}` });
  }

  /** The file can be read again (its owner rewrote it): drop its warning. */
  readable(file: string): void {
    this.warnings.clear(`unreadable:${file}`);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
