// The item-by-item JSON list: byte for byte what JSON.stringify of the whole list writes, for short and long lists, across its pieces and its buffer's growth, with text of several bytes per character.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsonList } from '../../src/util/json-list.js';

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
