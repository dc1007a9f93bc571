// Which usage pass looks at an idle shared volume: the pool listed one pass in `spread`, volumes without snapshots resting between listings, the others (and pools without a listing) by turns.
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

  it('an idle volume without snapshots rests between listings, and a listing sends it to be looked at when its directory changed', () => {
    const l = new SharedLooks(10);
    const k = 'quiet\u00002026-12-04T00:00:00.000Z';
    const turnOf = Array.from({ length: 10 }, (_, t) => t).find((t) => isTurnOf('quiet', t, 10))!;
    assert.notEqual(turnOf, 0, '(the test wants a volume whose turn is not a pass that lists)');
    assert.equal(l.rests(k, 'quiet', true, false, true, undefined, turnOf), true, 'measured before, a pass without a listing: rests, even at its turn');
    assert.equal(l.rests(k, 'quiet', true, false, true, 'sig-a', 10), false, 'not looked at in a pass that lists yet: looked at in the next one, whatever its turn');
    l.looked(k, 'sig-a', 10);
    for (let t = 11; t < 20; t++) assert.equal(l.rests(k, 'quiet', true, false, true, undefined, t), true, `pass ${t} has no listing: rests`);
    assert.equal(l.rests(k, 'quiet', true, false, true, 'sig-a', 20), true, 'the next listing shows it unchanged');
    assert.equal(l.rests(k, 'quiet', true, false, true, 'sig-b', 20), false, 'the next listing shows it changed: looked at');
    assert.equal(l.rests(k, 'quiet', false, false, true, undefined, 21), false, 'not idle (mounted, snapshotted here): looked at');
  });

  it('in a pool that cannot be listed, or when the listing failed, an idle volume is looked at by turns', () => {
    const l = new SharedLooks(10);
    const k = 'v\u0000t';
    assert.equal(Array.from({ length: 10 }, (_, t) => t).filter((t) => !l.rests(k, 'v', true, false, false, undefined, t)).length, 1, 'no listing: one pass in ten');
    l.looked(k, 'sig-a', 0);
    l.looked(k, undefined, 10); // (a pass that lists, without the listing)
    assert.equal(l.rests(k, 'v', true, false, true, undefined, 20), !isTurnOf('v', 20, 10), 'the next listing failed too: by turns');
  });

  it('a volume with snapshots is looked at by turns, listing or not', () => {
    const l = new SharedLooks(10);
    const k = 's\u0000t';
    l.looked(k, 'sig-a', 0);
    const looks = Array.from({ length: 10 }, (_, i) => i + 1).filter((t) => !l.rests(k, 's', true, true, true, t % 10 === 0 ? 'sig-a' : undefined, t));
    assert.equal(looks.length, 1);
  });
});
