/**
 * Ferry's backup engine: incremental, deduplicated, encrypted backups of a volume's directory tree to
 * a directory (`file:///path`) or an S3-compatible bucket (`s3://bucket/prefix`).
 *
 *   const repo = await init('s3://backups/ferry', { password, s3: { endpoint, pathStyle: true } });
 *   const repo = await open(url, { password });                    // FerryError 'bad_password', 'not_found', 'unavailable'
 *   const info = await runBackup(repo, '/var/lib/ferry/volumes/db/_data', { volume: 'db', onProgress });
 *   info.url                                                        // s3://backups/ferry?backup=ID&volume=db
 *   await repo.list({ volume: 'db' }); await repo.inspect(id);
 *   await runRestore(repo, id, '/tmp/restore', { onProgress });
 *   await repo.remove(id); await runPrune(repo);
 *   const report = await runVerify(repo, { readData: true });      // report.ok, report.problems[].pack/.backups
 *   repo.close();
 *
 * The repository stores and reads (repository.ts, with its index, packs and locks); backup, restore,
 * verify and prune use it and it never calls them. Every failure is a FerryError with a stable code:
 * invalid, not_found, exists, in_use, unavailable, bad_password, no_space, corrupt, internal. The format
 * is described in docs/backup-format.md.
 */
import { Repository, type InitOptions, type OpenOptions } from './repository.js';
import type { Target } from './target.js';
import { openTarget } from './open-target.js';
import { parseBackupUrl } from './url.js';

export { Repository } from './repository.js';
export type { InitOptions, OpenOptions, SecretOptions, SnapshotFile, RepoConfig, BackupInfo } from './repository.js';
export { runBackup, type BackupOptions, type BackupProgress } from './backup.js';
export { runRestore, type RestoreOptions, type RestoreResult, type RestoreProgress } from './restore.js';
export { runVerify, type VerifyOptions, type VerifyResult, type VerifyProblem } from './verify.js';
export { runPrune, type PruneResult } from './prune.js';
export { takeLock, type RepoLock } from './lock.js';
export { MemoryTarget } from './memory-target.js';
export { openTarget } from './open-target.js';
export { FileTarget } from './file-target.js';
export { S3Target } from './s3-target.js';
export type { Target, TargetOptions, S3Options, ObjectInfo } from './target.js';
export { parseBackupUrl, formatBackupUrl, type BackupUrl } from './url.js';
export type { TreeNode } from './tree.js';

/**
 * Create a repository. `target` is a Target or a URL (a backup URL's query is ignored).
 * Encrypted (AES-256-GCM) unless `encryption: 'none'` is given; then no password is taken.
 */
export function init(target: Target | string, opts: InitOptions): Promise<Repository> {
  return Repository.init(typeof target === 'string' ? openTarget(parseBackupUrl(target).target, opts) : target, opts);
}

/** Open a repository (a Target, or a URL such as a backup URL). */
export function open(target: Target | string, opts: OpenOptions = {}): Promise<Repository> {
  return Repository.open(typeof target === 'string' ? openTarget(parseBackupUrl(target).target, opts) : target, opts);
}
