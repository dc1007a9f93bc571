// Long JSON lists written item by item into one Buffer: what JSON.stringify of the whole writes, without its one big string.

/**
 * `head` + the items, each `JSON.stringify(item(x))`, separated by commas + `tail`, as UTF-8 in one Buffer:
 * with `head` `{"volumes":[` and `tail` `]}` the bytes JSON.stringify({volumes: xs.map(item)}) gives. Each item
 * is made, stringified and copied in before the next one is made, so 10,000 volumes leave young garbage
 * that the next scavenge frees, not 10,000 objects and a 3.5 MB string to promote and collect later; and
 * a Buffer is written to a socket as it is (a string is measured and encoded first, each time it is sent).
 * `sizeHint`: the expected length in bytes (the last list's), to grow the buffer seldom.
 */
export function jsonList<T>(head: string, xs: Iterable<T>, item: (x: T) => unknown, tail: string, sizeHint = 0): Buffer {
  let buf = Buffer.allocUnsafeSlow(Math.max(4096, sizeHint + (sizeHint >> 4)));
  let len = 0;
  const put = (s: string) => {
    // (a UTF-16 code unit is at most 3 bytes of UTF-8)
    if (len + 3 * s.length > buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(2 * buf.length, len + 3 * s.length));
      buf.copy(bigger, 0, 0, len);
      buf = bigger;
    }
    len += buf.write(s, len);
  };
  // items are gathered into pieces of ~16 KB before they are encoded: one write per item costs as much as its stringify
  let piece = head;
  let first = true;
  for (const x of xs) {
    const json = JSON.stringify(item(x)) ?? 'null'; // (as in an array)
    piece = first ? piece + json : `${piece},${json}`;
    first = false;
    if (piece.length >= 16_384) (put(piece), (piece = ''));
  }
  put(piece + tail);
  if (buf.length - len <= buf.length >> 3) return buf.subarray(0, len);
  // more than an eighth unused: keep an exact copy (the list is kept until it changes)
  const exact = Buffer.allocUnsafeSlow(len);
  buf.copy(exact, 0, 0, len);
  return exact;
}
