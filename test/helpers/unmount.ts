/** Unmounting in tests as a share's disappearance: umount, tried again for a moment while the target is busy. */
import { run } from './ferryd.js';
import { sleep } from './wait.js';

/**
 * umount PATH; while it is refused as busy (exit 32: a daemon under test had a file open there for an
 * instant, e.g. a heartbeat every 200 ms), try again, for up to a second. Returns umount's last exit code.
 */
export async function unmountRetrying(path: string): Promise<number> {
  let code = -1;
  for (let i = 0; i < 50 && code !== 0; i++) {
    code = (await run('umount', [path])).code;
    if (code !== 0) await sleep(20);
  }
  return code;
}
