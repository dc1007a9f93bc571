/**
 * Runs one backup in a child process, so that a test can SIGKILL it half-way:
 *   node backup-child.js REPO_URL PASSWORD DIR VOLUME
 * Prints "uploaded BYTES" whenever a pack has been written. Does nothing without arguments (the test
 * runner also loads every file under dist/test/).
 */
import { open, runBackup } from '../../src/backup/index.js';

const [url, password, dir, volume] = process.argv.slice(2);
if (url && password && dir && volume) {
  const repo = await open(url, { password });
  let last = 0;
  await runBackup(repo, dir, {
    volume,
    onProgress: (p) => {
      if (p.bytesUploaded !== last) {
        last = p.bytesUploaded;
        process.stdout.write(`uploaded ${last}\n`);
      }
    },
  });
  process.stdout.write('done\n');
  repo.close();
}
