// A SIGTERM whose stop is held up (a request that never ends) ends ferryd anyway after the deadline, saying where it was.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { startFerryd } from '../helpers/ferryd.js';

describe('the stop deadline', () => {
  it('exits 1 after FERRY_STOP_DEADLINE_MS, naming the step, and the next start comes up', async () => {
    const said = `/tmp/ferry-stop-deadline-${process.pid}`;
    rmSync(said, { force: true });
    // a Create held in flight for 30 s: the plugin server's close waits for it
    const f = await startFerryd({ logLevel: 'info', env: { FERRY_TEST_PAUSE: 'create-before-record:30000', FERRY_TEST_PAUSE_FILE: said, FERRY_STOP_DEADLINE_MS: '1000' } });
    try {
      const pending = f.plugin('Create', { Name: 'held' }).catch(() => undefined);
      const until = Date.now() + 20_000;
      while (!(existsSync(said) && readFileSync(said, 'utf8').includes('create-before-record'))) {
        assert.ok(Date.now() < until, 'ferryd did not reach create-before-record');
        await new Promise((r) => setTimeout(r, 50));
      }
      const code = await f.stop();
      assert.equal(code, 1, 'exited by the deadline, not after the 30 s request');
      assert.match(await f.logs(), /shutdown did not finish within 1 s \(at: requests in flight on \S+\); exiting now: the next start recovers what was under way/);
      await pending;
      await f.start();
      assert.equal(JSON.parse((await f.plugin('List', {})).text).Err, '');
    } finally {
      await f.destroy();
      rmSync(said, { force: true });
    }
  });
});
