/**
 * Runs one restore in a child process, so that a test can run it as another user:
 *   node restore-child.js REPO_URL PASSWORD BACKUP_ID TARGET_DIR
 * Prints the restore's result as JSON. Does nothing without arguments (the test runner also loads
 * every file under dist/test/).
 */
import { open, runRestore } from '../../src/backup/index.js';

const [url, password, id, target] = process.argv.slice(2);
if (url && password && id && target) {
  const repo = await open(url, { password });
  const res = await runRestore(repo, id, target);
  process.stdout.write(JSON.stringify(res) + '\n');
  repo.close();
}
