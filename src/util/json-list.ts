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

/** jsonList of items given as their JSON text. */
export function joinJson<T>(head: string, xs: Iterable<T>, json: (x: T) => string, tail: string, sizeHint = 0): Buffer {
  const out = new Bytes(sizeHint);
  // items are gathered into pieces of ~16 KB before they are encoded: one write per item costs as much as its stringify
  let piece = head;
  let first = true;
  for (const x of xs) {
    const item = json(x);
    piece = first ? piece + item : `${piece},${item}`;
    first = false;
    if (piece.length >= 16_384) (out.text(piece), (piece = ''));
  }
  out.text(piece + tail);
  return out.done();
}

/** A Buffer written in order: text encoded as UTF-8, or bytes copied in; grown by doubling. */
class Bytes {
  private buf: Buffer;
  /** Bytes written so far: where the next one goes. */
  len = 0;

  constructor(sizeHint: number) {
    this.buf = Buffer.allocUnsafeSlow(Math.max(4096, sizeHint + (sizeHint >> 4)));
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  text(s: string): void {
    this.room(3 * s.length); // (a UTF-16 code unit is at most 3 bytes of UTF-8)
    this.len += this.buf.write(s, this.len);
  }

  copy(src: Buffer, start: number, end: number): void {
    this.room(end - start);
    this.len += src.copy(this.buf, this.len, start, end);
  }

  /** The bytes written; an exact copy when more than an eighth of the buffer is unused (a list is kept until it changes). */
  done(): Buffer {
    if (this.buf.length - this.len <= this.buf.length >> 3) return this.buf.subarray(0, this.len);
    const exact = Buffer.allocUnsafeSlow(this.len);
    this.buf.copy(exact, 0, 0, this.len);
    return exact;
  }
}

/** An item of a list whose entries JsonItems keeps: its key, the values it is made of (compared with ===), and what `make` makes it of. */
export interface KeyedItem<T> {
  key: string;
  from: readonly unknown[];
  x: T;
}

/**
 * Lists (as jsonList writes them) whose items' JSON is kept between lists: an item is stringified again only
 * when one of the values it was made of changed, or when the list's scope (what every item is made of) did;
 * the others are copied from the last list, runs of neighbours in one copy. Each kept item is where it is in
 * the last list (its offsets), not a copy of its own: the memory is the last list's, and a few numbers per item.
 * 10,000 volumes where one changed: one stringify, 10,000 look-ups and three copies. What a list did not reach
 * (a removed volume) is dropped at its end.
 */
export class JsonItems {
  private kept = new Map<string, { from: readonly unknown[]; start: number; end: number; round: number }>();
  private last: Buffer | undefined;
  private scope: readonly unknown[] = [];
  private round = 0;

  list<T>(scope: readonly unknown[], head: string, items: Iterable<KeyedItem<T>>, make: (x: T) => unknown, tail: string, sizeHint = 0): Buffer {
    if (!sameValues(scope, this.scope)) this.kept.clear();
    this.scope = scope;
    const round = ++this.round;
    const last = this.last;
    const out = new Bytes(sizeHint);
    // a run of kept items, neighbours in the last list too: [runFrom, runTo) there, copied in one piece to runAt here
    let runFrom = 0;
    let runTo = -1;
    let runAt = 0;
    // items made now, with the commas before them: written in ~16 KB pieces (one write per item costs as much as
    // its stringify), their offsets known once the piece is written
    let text = head;
    let made: Array<{ entry: { start: number; end: number }; json: string; at: number }> = [];
    const writeRun = () => {
      if (runTo >= 0) out.copy(last!, runFrom, runTo);
      runTo = -1;
    };
    const writeText = () => {
      if (text === '') return;
      const at = out.len;
      out.text(text);
      if (out.len - at === text.length) {
        for (const m of made) (m.entry.start = at + m.at), (m.entry.end = m.entry.start + m.json.length); // (all one byte per character)
      } else {
        let pos = at + Buffer.byteLength(text.slice(0, made[0]?.at ?? 0));
        let prevEnd = made[0]?.at ?? 0;
        for (const m of made) {
          pos += m.at - prevEnd; // (the comma between; head is before the first)
          m.entry.start = pos;
          pos += Buffer.byteLength(m.json);
          m.entry.end = pos;
          prevEnd = m.at + m.json.length;
        }
      }
      text = '';
      made = [];
    };
    let first = true;
    for (const { key, from, x } of items) {
      const k = this.kept.get(key);
      if (k && last && sameValues(k.from, from)) {
        // (it continues the run when the last list had it right after the run's end, past the comma between)
        if (runTo >= 0 && k.start === runTo + 1) runTo = k.end;
        else {
          writeRun();
          if (!first) text += ',';
          writeText();
          runFrom = k.start;
          runTo = k.end;
          runAt = out.len;
        }
        const start = runAt + (k.start - runFrom);
        k.end = start + (k.end - k.start);
        k.start = start;
        k.round = round;
      } else {
        writeRun();
        if (!first) text += ',';
        const json = JSON.stringify(make(x)) ?? 'null';
        const entry = { from, start: 0, end: 0, round };
        this.kept.set(key, entry);
        made.push({ entry, json, at: text.length });
        text += json;
        if (text.length >= 16_384) writeText();
      }
      first = false;
    }
    writeRun();
    text += tail;
    writeText();
    const body = out.done(); // (offsets hold: done() copies from the start)
    for (const [key, k] of this.kept) if (k.round !== round) this.kept.delete(key);
    this.last = body;
    return body;
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
