// A restore syncs its filesystem as it goes (restore-writeback.ts); a sync that fails must fail the restore, since no later sync would report it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writeback } from '../../src/backup/restore-writeback.js';
import { FerryError } from '../../src/util/errors.js';

describe('writeback during a restore', () => {
  it('syncs once a step was written, and a sync that fails is reported by check(), never by stop()', async () => {
    const gone = join(tmpdir(), `ferry-writeback-missing-${process.pid}`); // sync -f cannot open it: the sync fails
    const below = new Writeback(gone, 1000);
    below.wrote(999);
    await below.stop();
    assert.doesNotThrow(() => below.check(), 'below the step nothing was synced');

    const off = new Writeback(gone, 0);
    off.wrote(1e9);
    await off.stop();
    assert.doesNotThrow(() => off.check(), 'step 0: no writeback');

    const failing = new Writeback(gone, 1000);
    failing.wrote(600);
    failing.wrote(600);
    await failing.stop(); // waits for the sync, does not throw
    assert.throws(
      () => failing.check(),
      (e: unknown) => e instanceof FerryError && e.code === 'internal' && e.message.includes(gone) && /could not be written to the disk/.test(e.message),
    );
  });

  it('a sync of a directory that exists succeeds, and stop() waits for it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-writeback-'));
    try {
      const w = new Writeback(dir, 10);
      w.wrote(10);
      await w.stop();
      w.check();
      await rm(dir, { recursive: true }); // nothing of the sync holds the directory any more
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
