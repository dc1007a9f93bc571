// The item-by-item JSON list: byte for byte what JSON.stringify of the whole list writes, for short and long lists, across its pieces and its buffer's growth, with text of several bytes per character; and the items' JSON kept between lists, made again exactly when what they were made of changed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { joinJson, jsonList, JsonItems } from '../../src/util/json-list.js';

const whole = <T>(xs: T[], item: (x: T) => unknown) => JSON.stringify({ volumes: xs.map(item) });

describe('jsonList', () => {
  it('writes an empty list and a list of one', () => {
    assert.equal(jsonList('{"volumes":[', [], (x) => x, ']}').toString('utf8'), '{"volumes":[]}');
    assert.equal(jsonList('{"volumes":[', [{ a: 1 }], (x) => x, ']}').toString('utf8'), '{"volumes":[{"a":1}]}');
  });

  it('writes 10,000 items as JSON.stringify does, whatever the size hint', () => {
    const xs = Array.from({ length: 10_000 }, (_, i) => ({ name: `v${i}`, labels: i % 7 ? {} : { 'é→': '日本語'.repeat(i % 5) }, bytes: i * 4096, note: i % 3 ? null : 'x' }));
    const item = (x: (typeof xs)[number]) => ({ ...x, n: x.name.length });
    const want = whole(xs, item);
    for (const hint of [0, 100, want.length, 10 * want.length]) {
      const got = jsonList('{"volumes":[', xs, item, ']}', hint);
      assert.equal(got.toString('utf8'), want, `size hint ${hint}`);
      assert.equal(got.length, Buffer.byteLength(want));
    }
  });

  it('writes an item larger than a piece, and an undefined item as null (as in an array)', () => {
    const big = 'ü'.repeat(50_000);
    const xs = [1, 2, 3];
    const item = (x: number) => (x === 2 ? undefined : { x, big });
    assert.equal(jsonList('{"volumes":[', xs, item, ']}').toString('utf8'), whole(xs, item));
  });
});

describe('joinJson', () => {
  it('joins items given as text and as UTF-8 bytes, in any mix, growing its buffer', () => {
    const xs = Array.from({ length: 3000 }, (_, i) => ({ i, s: 'ü→'.repeat(i % 40) }));
    const mixed = (x: (typeof xs)[number]) => (x.i % 3 === 0 ? Buffer.from(JSON.stringify(x)) : JSON.stringify(x));
    for (const hint of [0, 10]) assert.equal(joinJson('{"volumes":[', xs, mixed, ']}', hint).toString('utf8'), whole(xs, (x) => x));
    assert.equal(joinJson('[', [1], (x) => Buffer.from(String(x)), ']').toString('utf8'), '[1]');
  });
});

describe('JsonItems', () => {
  it('makes an item again only when a value it was made of, or the scope, changed; drops items no list reached', () => {
    const items = new JsonItems();
    const made: string[] = [];
    const state = new Map<string, { n: number; stamp: number }>([['a', { n: 1, stamp: 1 }], ['b', { n: 2, stamp: 1 }], ['c', { n: 3, stamp: 1 }]]);
    const list = (scope: unknown[], extra: (k: string) => unknown = () => undefined) => {
      items.begin(scope);
      const body = joinJson('[', [...state.keys()].sort(), (k) => items.json(k, [state.get(k)!.stamp, extra(k)], () => (made.push(k), { k, n: state.get(k)!.n, x: extra(k) ?? null })), ']');
      items.end();
      return body.toString('utf8');
    };
    const want = (extra: (k: string) => unknown = () => undefined) => JSON.stringify([...state.keys()].sort().map((k) => ({ k, n: state.get(k)!.n, x: extra(k) ?? null })));

    assert.equal(list([1]), want());
    assert.deepEqual(made.splice(0), ['a', 'b', 'c']);
    assert.equal(list([1]), want(), 'nothing changed');
    assert.deepEqual(made.splice(0), []);

    state.set('b', { n: 20, stamp: 2 });
    assert.equal(list([1]), want());
    assert.deepEqual(made.splice(0), ['b'], 'only the item whose stamp moved');

    // a value compared by identity: an equal but new array is a change
    const held = ['c1'];
    assert.equal(list([1], (k) => (k === 'c' ? held : undefined)), want((k) => (k === 'c' ? held : undefined)));
    assert.deepEqual(made.splice(0), ['c']);
    assert.equal(list([1], (k) => (k === 'c' ? held : undefined)), want((k) => (k === 'c' ? held : undefined)));
    assert.deepEqual(made.splice(0), []);
    assert.equal(list([1], (k) => (k === 'c' ? ['c1'] : undefined)), want((k) => (k === 'c' ? ['c1'] : undefined)));
    assert.deepEqual(made.splice(0), ['c']);

    // the scope changed: every item again
    assert.equal(list([2]), want());
    assert.deepEqual(made.splice(0), ['a', 'b', 'c']);

    // a removed item is dropped; a new one under its name is made, even at the same stamp
    state.delete('a');
    assert.equal(list([2]), want());
    assert.equal(items.size, 2);
    state.set('a', { n: 100, stamp: 1 });
    assert.equal(list([2]), want());
    assert.deepEqual(made.splice(0), ['a']);
  });
});
