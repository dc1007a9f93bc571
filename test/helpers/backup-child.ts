/**
 * Runs one backup-library operation in a child process, for tests that need another process: one to
 * SIGKILL half-way, another user, a copy of Ferry without an optional package.
 *   node backup-child.js backup REPO_URL PASSWORD DIR VOLUME   -> "uploaded BYTES" whenever a pack has
 *     been written, then {"id": ...}
 *   node backup-child.js restore REPO_URL PASSWORD BACKUP_ID TARGET_DIR   -> the restore's result
 *   node backup-child.js verify REPO_URL PASSWORD   -> the result of a verify that reads all data
 *   node backup-child.js codec   -> {"format": N}: the format byte this process gives a compressible chunk
 * Results are one JSON line; a failure prints {"error": CODE, "message": ...} and exits with status 1.
 * Does nothing without arguments (the test runner also loads every file under dist/test/).
 */
import { open, runBackup, runRestore, runVerify } from '../../src/backup/index.js';
import { Codec } from '../../src/backup/crypto.js';
import { FerryError } from '../../src/util/errors.js';

const [op, url, password, a, b] = process.argv.slice(2);

async function run(): Promise<unknown> {
  if (op === 'codec') return { format: new Codec(null).encodeSync(Buffer.from('compressible text '.repeat(1000)))[0] };
  if (!url || !password) throw new Error('usage: backup-child.js backup|restore|verify|codec REPO_URL PASSWORD ...');
  const repo = await open(url, { password });
  try {
    if (op === 'backup' && a && b) {
      let last = 0;
      const onProgress = (p: { bytesUploaded: number }) => {
        if (p.bytesUploaded !== last) process.stdout.write(`uploaded ${(last = p.bytesUploaded)}\n`);
      };
      return { id: (await runBackup(repo, a, { volume: b, onProgress })).id };
    }
    if (op === 'restore' && a && b) return await runRestore(repo, a, b);
    if (op === 'verify') return await runVerify(repo, { readData: true });
    throw new Error(`unknown operation ${op}`);
  } finally {
    repo.close();
  }
}

if (op) {
  try {
    process.stdout.write(JSON.stringify(await run()) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: err instanceof FerryError ? err.code : 'exception', message: (err as Error).message }) + '\n');
    process.exitCode = 1;
  }
}
