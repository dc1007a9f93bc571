// Which usage pass looks at an idle shared volume: the pool listed one pass in `spread`, volumes without snapshots resting on the last listing between, the others by turns.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedLooks, isTurnOf } from '../../src/volumes/usage-turns.js';

describe('SharedLooks', () => {
  it('lists the pool in one pass out of `spread`, in every pass with a spread of 1', () => {
    const l = new SharedLooks(10);
    assert.deepEqual(Array.from({ length: 21 }, (_, t) => t).filter((t) => l.listsIn(t)), [0, 10, 20]);
    const every = new SharedLooks(1);
    assert.ok([0, 1, 2, 3].every((t) => every.listsIn(t)));
  });

  it('an idle volume without snapshots rests on the last listing until a listing shows its directory changed', () => {
    const l = new SharedLooks(10);
    const k = 'quiet\u00002026-12-04T00:00:00.000Z';
    const turnOf = Array.from({ length: 10 }, (_, t) => t).find((t) => isTurnOf('quiet', t, 10))!;
    assert.notEqual(turnOf % 10, 0, "(the test wants a volume whose turn is not a listing pass)");
    assert.equal(l.rests(k, 'quiet', true, false, undefined, turnOf), false, 'never looked at, a pass without a listing: by turns');
    l.looked(k, undefined, turnOf);
    assert.equal(l.rests(k, 'quiet', true, false, undefined, turnOf + 10), false, 'looked at without a listing: still by turns');
    assert.equal(l.rests(k, 'quiet', true, false, 'sig-a', 0), false, 'not looked at in a pass that lists yet: looked at in the next one, whatever its turn');
    l.looked(k, 'sig-a', 0);
    for (let t = 1; t < 10; t++) assert.equal(l.rests(k, 'quiet', true, false, undefined, t), true, `pass ${t} has no listing: rests`);
    assert.equal(l.rests(k, 'quiet', true, false, 'sig-a', 10), true, 'the next listing shows it unchanged');
    assert.equal(l.rests(k, 'quiet', true, false, 'sig-b', 10), false, 'the next listing shows it changed: looked at');
    assert.equal(l.rests(k, 'quiet', false, false, undefined, 11), false, 'not idle (mounted, snapshotted here): looked at');
  });

  it('a look in a pass without a listing keeps the last listing; a look in a listing pass without the listing drops it', () => {
    const l = new SharedLooks(10);
    const k = 'v\u0000t';
    l.looked(k, 'sig-a', 0);
    l.looked(k, undefined, 3);
    assert.equal(l.rests(k, 'v', true, false, undefined, 4), true);
    l.looked(k, undefined, 10); // (the listing of pass 10 failed)
    const looks = Array.from({ length: 10 }, (_, i) => 11 + i).filter((t) => !l.rests(k, 'v', true, false, undefined, t));
    assert.equal(looks.length, 1, 'seen in no listing: one pass in ten looks at it');
  });

  it('a volume with snapshots is looked at by turns, listing or not', () => {
    const l = new SharedLooks(10);
    const k = 's\u0000t';
    l.looked(k, 'sig-a', 0);
    const looks = Array.from({ length: 10 }, (_, i) => i + 1).filter((t) => !l.rests(k, 's', true, true, t % 10 === 0 ? 'sig-a' : undefined, t));
    assert.equal(looks.length, 1);
  });
});
