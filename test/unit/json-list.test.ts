// The item-by-item JSON list: byte for byte what JSON.stringify of the whole list writes, for short and long lists, across its pieces and its buffer's growth, with text of several bytes per character; and the items' JSON kept between lists, made again exactly when what they were made of changed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsonList, JsonItems } from '../../src/util/json-list.js';

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

describe('JsonItems', () => {
  interface Item { key: string; stamp: number; n: number; text: string }
  const make = (x: Item) => ({ key: x.key, n: x.n, text: x.text });
  const run = (items: JsonItems, xs: Item[], scope: unknown[] = [], made: string[] = []) =>
    items.list(scope, '{"volumes":[', xs.map((x) => ({ key: x.key, from: [x.stamp], x })), (x) => (made.push(x.key), make(x)), ']}').toString('utf8');

  it('makes an item again only when a value it was made of, or the scope, changed; drops items no list reached', () => {
    const items = new JsonItems();
    const made: string[] = [];
    const xs: Item[] = ['a', 'b', 'c'].map((key, i) => ({ key, stamp: 1, n: i, text: 'é' }));
    const want = () => JSON.stringify({ volumes: xs.map(make) });
    assert.equal(run(items, xs, [1], made), want());
    assert.deepEqual(made.splice(0), ['a', 'b', 'c']);
    assert.equal(run(items, xs, [1], made), want(), 'nothing changed');
    assert.deepEqual(made.splice(0), []);
    xs[1] = { ...xs[1]!, stamp: 2, n: 20 };
    assert.equal(run(items, xs, [1], made), want());
    assert.deepEqual(made.splice(0), ['b'], 'only the item whose stamp moved');
    // a value compared by identity: an equal but new array is a change
    const held = ['c1'];
    const withHeld = (arr: string[]) => items.list([1], '[', xs.map((x) => ({ key: x.key, from: [x.stamp, x.key === 'c' ? arr : undefined], x })), (x) => (made.push(x.key), make(x)), ']').toString('utf8');
    withHeld(held);
    made.splice(0);
    withHeld(held);
    assert.deepEqual(made.splice(0), []);
    withHeld(['c1']);
    assert.deepEqual(made.splice(0), ['c']);
    // the scope changed: every item again
    assert.equal(run(items, xs, [2], made), want());
    assert.deepEqual(made.splice(0), ['a', 'b', 'c']);
    // a removed item is dropped; a new one under its name is made, even at the same stamp
    const a = xs.shift()!;
    assert.equal(run(items, xs, [2], made), want());
    assert.equal(items.size, 2);
    xs.unshift({ ...a, n: 100 });
    assert.equal(run(items, xs, [2], made), want());
    assert.deepEqual(made.splice(0), ['a']);
  });

  it('gives what JSON.stringify of the whole list gives, list after list, whatever comes, goes and changes', () => {
    // seeded: the same sequence every run
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const texts = ['', 'plain', 'é→日本語', '\u0000"quoted"', 'x'.repeat(300), '🚢'.repeat(20)];
    const items = new JsonItems();
    let xs: Item[] = Array.from({ length: 400 }, (_, i) => ({ key: `k${String(i).padStart(4, '0')}`, stamp: 1, n: i, text: texts[i % texts.length]! }));
    let next = 400;
    let scope = 1;
    for (let round = 0; round < 200; round++) {
      const op = rnd(10);
      if (op < 4) {
        // change a few items
        for (let j = rnd(5); j >= 0; j--) {
          const i = rnd(xs.length);
          xs[i] = { ...xs[i]!, stamp: xs[i]!.stamp + 1, n: rnd(1000), text: texts[rnd(texts.length)]! };
        }
      } else if (op < 6) {
        // add some, anywhere (the list is sorted by key)
        for (let j = rnd(4); j >= 0; j--) xs.push({ key: `k${String(rnd(2000)).padStart(4, '0')}x${next++}`, stamp: 1, n: next, text: texts[rnd(texts.length)]! });
        xs.sort((p, q) => p.key.localeCompare(q.key));
      } else if (op < 8) {
        // remove some
        for (let j = rnd(4); j >= 0 && xs.length > 0; j--) xs.splice(rnd(xs.length), 1);
      } else if (op === 8) {
        scope++;
      }
      // (op 9: nothing changed)
      const made: string[] = [];
      assert.equal(run(items, xs, [scope], made), JSON.stringify({ volumes: xs.map(make) }), `round ${round}, op ${op}`);
      assert.equal(items.size, xs.length);
      if (op === 9) assert.deepEqual(made, [], 'nothing made when nothing changed');
    }
    // an empty list, and one again after it
    assert.equal(run(items, [], [scope]), '{"volumes":[]}');
    xs = xs.slice(0, 3);
    assert.equal(run(items, xs, [scope]), JSON.stringify({ volumes: xs.map(make) }));
  });
});
