// Long JSON lists written item by item into one Buffer: what JSON.stringify of the whole writes, without its one big string, and with each item's JSON kept between lists.

/**
 * `head` + the items, each `JSON.stringify(item(x))`, separated by commas + `tail`, as UTF-8 in one Buffer:
 * with `head` `{"volumes":[` and `tail` `]}` the bytes JSON.stringify({volumes: xs.map(item)}) gives. Each item
 * is made, stringified and copied in before the next one is made, so 10,000 volumes leave young garbage
 * that the next scavenge frees, not 10,000 objects and a 3.5 MB string to promote and collect later; and
 * a Buffer is written to a socket as it is (a string is measured and encoded first, each time it is sent).
 * `sizeHint`: the expected length in bytes (the last list's), to grow the buffer seldom.
 */
export function jsonList<T>(head: string, xs: Iterable<T>, item: (x: T) => unknown, tail: string, sizeHint = 0): Buffer {
  return joinJson(head, xs, (x) => JSON.stringify(item(x)) ?? 'null', tail, sizeHint); // (undefined: as in an array)
}

/** jsonList of items given as their JSON: text, or UTF-8 bytes (as JsonItems keeps them, copied in as they are). */
export function joinJson<T>(head: string, xs: Iterable<T>, json: (x: T) => string | Uint8Array, tail: string, sizeHint = 0): Buffer {
  let buf = Buffer.allocUnsafeSlow(Math.max(4096, sizeHint + (sizeHint >> 4)));
  let len = 0;
  const room = (n: number) => {
    if (len + n <= buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * buf.length, len + n));
    buf.copy(bigger, 0, 0, len);
    buf = bigger;
  };
  const put = (s: string) => {
    room(3 * s.length); // (a UTF-16 code unit is at most 3 bytes of UTF-8)
    len += buf.write(s, len);
  };
  // text items are gathered into pieces of ~16 KB before they are encoded: one write per item costs as much as its stringify
  let piece = head;
  let first = true;
  for (const x of xs) {
    const item = json(x);
    if (typeof item === 'string') {
      piece = first ? piece + item : `${piece},${item}`;
      if (piece.length >= 16_384) (put(piece), (piece = ''));
    } else {
      if (piece.length > 0) (put(piece), (piece = ''));
      room(item.length + 1);
      if (!first) buf[len++] = 0x2c; // ,
      buf.set(item, len);
      len += item.length;
    }
    first = false;
  }
  put(piece + tail);
  if (buf.length - len <= buf.length >> 3) return buf.subarray(0, len);
  // more than an eighth unused: keep an exact copy (the list is kept until it changes)
  const exact = Buffer.allocUnsafeSlow(len);
  buf.copy(exact, 0, 0, len);
  return exact;
}

/**
 * Each item's JSON kept between lists, by key: an item is stringified again only when one of the values it
 * was made from changed (compared with ===), or when the list's scope (what every item was made from) did.
 * 10,000 volumes where one changed: one stringify and 10,000 lookups, not 10,000 stringifies. What a list
 * did not reach (a removed volume) is dropped at its end.
 */
export class JsonItems {
  private kept = new Map<string, { from: readonly unknown[]; json: Buffer; round: number }>();
  private scope: readonly unknown[] = [];
  private round = 0;

  /** Start a list; `scope`: the values every item depends on (a version of the usage figures, say). */
  begin(scope: readonly unknown[]): void {
    if (!sameValues(scope, this.scope)) this.kept.clear();
    this.scope = scope;
    this.round++;
  }

  /** The JSON of the item `key` (UTF-8), made of `from`: the one kept if `from` is what it was, else `make()`'s, kept. */
  json(key: string, from: readonly unknown[], make: () => unknown): Buffer {
    const k = this.kept.get(key);
    if (k && sameValues(k.from, from)) {
      k.round = this.round;
      return k.json;
    }
    const json = Buffer.from(JSON.stringify(make()) ?? 'null');
    this.kept.set(key, { from, json, round: this.round });
    return json;
  }

  /** End a list: drop what it did not reach. */
  end(): void {
    for (const [key, k] of this.kept) if (k.round !== this.round) this.kept.delete(key);
  }

  /** How many items are kept (for tests). */
  get size(): number {
    return this.kept.size;
  }
}

function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
