/** Backup targets: the ones of ferryd's config or a URL, resolved to a repository URL and its secret; opening them, remembering which failed to open, creating a repository. */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FerryError, errorMessage } from '../util/errors.js';
import { shown } from '../util/shown.js';
import type { TargetProblem } from '../wire/types.js';
import { init as initRepo, open as openRepo, parseBackupUrl, type Repository, type S3Options } from './index.js';

/** A backup target from ferryd's config (`backupTargets.NAME`). */
export interface BackupTargetConfig {
  url: string;
  /** The repository's password; better: passwordFile. */
  password?: string;
  /** A file whose whole content is the repository's secret (a key file). */
  passwordFile?: string;
  s3?: S3Options;
  /**
   * Keep the snapshot a backup reads as the base of the next one (default true). false: remove it after
   * the backup; for pools without cheap snapshots (ext4, NFS), where that snapshot is a full copy.
   */
  keepBase?: boolean;
}

export interface BackupSettings {
  targets: Record<string, BackupTargetConfig>;
  /** The secret for targets given by URL that match no configured one (else env FERRY_BACKUP_PASSWORD). */
  passwordFile?: string;
}

/** A target as a backup, restore, verify or prune uses it: the repository's URL, its secret, its settings. */
export interface ResolvedTarget {
  url: string;
  name?: string;
  password?: string;
  keyFile?: string;
  s3?: S3Options;
  keepBase?: boolean;
}

export class Targets {
  private readonly broken = new Map<string, TargetProblem>();

  constructor(
    private readonly settings: BackupSettings,
    private readonly log: Logger,
  ) {}

  /** A configured target by name, or a URL (which picks up the settings of a configured target with the same URL). */
  resolve(ref: string): ResolvedTarget {
    if (!ref) throw new FerryError('invalid', 'name a backup target: --target NAME (from backupTargets in the config) or --target file:///path or s3://bucket/prefix');
    const named = this.settings.targets[ref];
    let url: string;
    let conf: BackupTargetConfig | undefined = named;
    if (named) url = named.url;
    else if (/^(file|s3):/.test(ref)) {
      url = parseBackupUrl(ref).target;
      conf = Object.values(this.settings.targets).find((t) => parseBackupUrl(t.url).target === url);
    } else {
      const names = Object.keys(this.settings.targets);
      throw new FerryError('invalid', `no backup target named ${shown(ref)}; configured: ${names.length ? names.join(', ') : 'none'} (or give a URL: file:///path, s3://bucket/prefix)`);
    }
    const name = named ? ref : Object.entries(this.settings.targets).find(([, t]) => t === conf)?.[0];
    return {
      url,
      ...(name ? { name } : {}),
      ...(conf?.password ? { password: conf.password } : {}),
      ...(conf?.passwordFile ? { keyFile: conf.passwordFile } : !conf?.password && this.settings.passwordFile ? { keyFile: this.settings.passwordFile } : {}),
      ...(!conf?.password && !conf?.passwordFile && !this.settings.passwordFile && process.env.FERRY_BACKUP_PASSWORD ? { password: process.env.FERRY_BACKUP_PASSWORD } : {}),
      ...(conf?.s3 ? { s3: conf.s3 } : {}),
      ...(conf?.keepBase !== undefined ? { keepBase: conf.keepBase } : {}),
    };
  }

  /** The name a target is known by in the history and /metrics: its configured name, else its URL. */
  label(t: ResolvedTarget): string {
    return t.name ?? t.url;
  }

  private secretOf(t: ResolvedTarget) {
    return { ...(t.password ? { password: t.password } : {}), ...(t.keyFile ? { keyFile: t.keyFile } : {}), ...(t.s3 ? { s3: t.s3 } : {}) };
  }

  /** Configured targets whose repository failed to open the last time ferryd tried (a later success clears it). */
  problems(): TargetProblem[] {
    return [...this.broken.values()].sort((a, b) => a.target.localeCompare(b.target));
  }

  /** Open the target's repository (the caller closes it); a configured target's failure is remembered. */
  async open(t: ResolvedTarget): Promise<Repository> {
    try {
      const r = await this.openRepo(t);
      if (t.name) this.broken.delete(t.name);
      return r;
    } catch (err) {
      if (t.name) this.broken.set(t.name, { target: t.name, code: err instanceof FerryError ? err.code : 'internal', message: errorMessage(err), at: new Date().toISOString() });
      throw err;
    }
  }

  private async openRepo(t: ResolvedTarget): Promise<Repository> {
    if (!t.password && !t.keyFile) {
      // an unencrypted repository opens without a secret; an encrypted one says what is missing
      try {
        return await openRepo(t.url, this.secretOf(t));
      } catch (err) {
        if (err instanceof FerryError && err.code === 'bad_password') {
          throw new FerryError('bad_password', `the repository at ${t.url} is encrypted and ferryd has no password for it: set passwordFile for this target in backupTargets, backupPasswordFile, or FERRY_BACKUP_PASSWORD in ferryd's environment`);
        }
        throw err;
      }
    }
    try {
      return await openRepo(t.url, this.secretOf(t));
    } catch (err) {
      // which secret was tried: two targets may share a URL with different key files
      if (!(err instanceof FerryError && err.code === 'bad_password')) throw err;
      const from = t.keyFile ? `the key file ${t.keyFile}` : `the password ${process.env.FERRY_BACKUP_PASSWORD === t.password ? 'in FERRY_BACKUP_PASSWORD' : 'in the target\'s config'}`;
      throw new FerryError('bad_password', `wrong password or key file for ${t.name ? `target ${t.name} (${t.url})` : t.url}: ${from} does not open it; check it`, err.details);
    }
  }

  /** Run `fn` on the target's open repository, closed after. */
  async withRepo<T>(t: ResolvedTarget, fn: (r: Repository) => Promise<T>): Promise<T> {
    const repo = await this.open(t);
    try {
      return await fn(repo);
    } finally {
      repo.close();
    }
  }

  /** Create a repository at a target (encrypted unless `encryption: 'none'`). */
  async init(ref: string, { encryption = 'aes-256-gcm' }: { encryption?: 'aes-256-gcm' | 'none' } = {}): Promise<{ target: string; encrypted: boolean }> {
    const t = this.resolve(ref);
    if (encryption !== 'none' && !t.password && !t.keyFile) {
      throw new FerryError('invalid', `a password is needed to encrypt ${t.url}: set passwordFile for it in backupTargets (or backupPasswordFile, or FERRY_BACKUP_PASSWORD for ferryd); an unencrypted repository only with --no-encryption`);
    }
    const repo = await initRepo(t.url, { ...this.secretOf(t), encryption });
    repo.close();
    this.log.info({ target: t.url, encryption }, 'backup repository initialised');
    return { target: t.url, encrypted: encryption !== 'none' };
  }

  /** Read the password files now, so that a bad path is reported at start-up rather than at the first backup. */
  async checkSecrets(): Promise<void> {
    const files = [this.settings.passwordFile, ...Object.values(this.settings.targets).map((t) => t.passwordFile)].filter((f): f is string => !!f);
    for (const f of files) {
      try {
        await readFile(f);
      } catch (err) {
        throw new FerryError('invalid', `cannot read backup password file ${f}: ${errorMessage(err)}`);
      }
    }
  }
}
