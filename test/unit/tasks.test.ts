// util/parallel's Tasks: at most `limit` jobs at a time, errors re-thrown, and no promise settled twice.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Tasks } from '../../src/util/parallel.js';

describe('Tasks', () => {
  it('runs at most limit jobs at a time, and drain() returns only when all have ended', async () => {
    const tasks = new Tasks(3);
    let now = 0;
    let most = 0;
    const ended: number[] = [];
    for (let i = 0; i < 20; i++) {
      await tasks.spawn(async () => {
        now++;
        most = Math.max(most, now);
        await sleep(i % 4);
        now--;
        ended.push(i);
      });
      assert.ok(now <= 3);
    }
    await tasks.drain();
    assert.equal(most, 3);
    assert.equal(ended.length, 20);
    assert.equal(now, 0);
  });

  it('re-throws the first failure from the next spawn() and from drain(), after the running jobs end', async () => {
    const tasks = new Tasks(2);
    let lateEnded = false;
    await tasks.spawn(async () => {
      await sleep(1);
      throw new Error('first');
    });
    await tasks.spawn(async () => {
      await sleep(20);
      lateEnded = true;
    });
    await assert.rejects(tasks.spawn(async () => undefined), /first/);
    await assert.rejects(tasks.drain(), /first/);
    assert.ok(lateEnded, 'drain() waited for the job still running');
  });

  it('a job that throws before it returns a promise fails its spawn() and is not counted as running', { timeout: 5000 }, async () => {
    const tasks = new Tasks(1);
    await assert.rejects(
      tasks.spawn(() => {
        throw new Error('at once');
      }),
      /at once/,
    );
    await tasks.spawn(() => sleep(1)); // the one slot is free
    await tasks.drain();
  });

  it('waitOne() returns when one job ends, or at once when none runs', async () => {
    const tasks = new Tasks(4);
    await tasks.waitOne();
    let fastDone = false;
    await tasks.spawn(() => sleep(200));
    await tasks.spawn(async () => {
      await sleep(1);
      fastDone = true;
    });
    await tasks.waitOne();
    assert.ok(fastDone);
    await tasks.drain();
  });

  it('settles no promise twice, however many jobs wait (Promise.race over the running jobs did, for every job)', async () => {
    process.noDeprecation = true; // the multipleResolves event is deprecated, and it is the way to see this
    let twice = 0;
    const count = () => twice++;
    process.on('multipleResolves', count);
    try {
      const tasks = new Tasks(16);
      for (let i = 0; i < 500; i++) await tasks.spawn(() => sleep(i % 3));
      await tasks.drain();
    } finally {
      process.off('multipleResolves', count);
    }
    assert.equal(twice, 0);
  });
});
