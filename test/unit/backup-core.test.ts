import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Chunker, StreamChunker, DATA_CHUNKS, TREE_CHUNKS } from '../../src/backup/chunker.js';
import { brotliCompressSync } from 'node:zlib';
import { Codec, newMasterKey, seal } from '../../src/backup/crypto.js';
import { parseBackupUrl, formatBackupUrl, openTarget, FileTarget, S3Target } from '../../src/backup/index.js';
import { parseTree, serializeTree, type ScannedNode } from '../../src/backup/tree.js';

const seed = Buffer.from('test seed');
const hashes = (parts: Uint8Array[]) => parts.map((p) => createHash('sha256').update(p).digest('hex'));

/** Random data that is deterministic (so a failure can be reproduced). */
function pseudoRandom(n: number, key = 'x'): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let off = 0, i = 0; off < n; i++) {
    const d = createHash('sha512').update(`${key}:${i}`).digest();
    off += d.copy(out, off);
  }
  return out;
}

describe('backup chunker', () => {
  const data = pseudoRandom(48 * 1024 * 1024);
  const chunker = new Chunker(DATA_CHUNKS, seed);

  it('is deterministic and cuts between min and max', () => {
    const a = chunker.split(data);
    const b = new Chunker(DATA_CHUNKS, seed).split(data);
    assert.deepEqual(a.map((c) => c.length), b.map((c) => c.length));
    assert.equal(a.reduce((s, c) => s + c.length, 0), data.length);
    assert.ok(Buffer.concat(a).equals(data));
    for (const c of a.slice(0, -1)) assert.ok(c.length >= DATA_CHUNKS.min && c.length <= DATA_CHUNKS.max, `chunk of ${c.length}`);
    const mean = data.length / a.length;
    assert.ok(mean > 700 * 1024 && mean < 1800 * 1024, `mean chunk ${mean}`);
    // another seed cuts elsewhere
    const c = new Chunker(DATA_CHUNKS, Buffer.from('other')).split(data);
    assert.notDeepEqual(a.map((x) => x.length), c.map((x) => x.length));
  });

  it('never exceeds max, also on data without boundaries (zeros)', () => {
    const zeros = Buffer.alloc(40 * 1024 * 1024);
    const parts = chunker.split(zeros);
    for (const p of parts) assert.ok(p.length <= DATA_CHUNKS.max);
    assert.equal(parts.reduce((s, c) => s + c.length, 0), zeros.length);
    const small = chunker.split(Buffer.from('tiny'));
    assert.deepEqual(small.map((p) => p.length), [4]);
  });

  it('re-synchronises after an insertion near the start', () => {
    const edited = Buffer.concat([data.subarray(0, 1000), Buffer.from('inserted bytes!'), data.subarray(1000)]);
    const before = new Set(hashes(chunker.split(data)));
    const after = hashes(chunker.split(edited));
    const shared = after.filter((h) => before.has(h)).length;
    assert.ok(shared >= after.length - 2, `only ${shared} of ${after.length} chunks shared`);
  });

  it('streams with bounded memory and cuts exactly as on a whole buffer', async () => {
    const sc = new StreamChunker(chunker);
    let pos = 0;
    sc.reset(async (into, off, len) => {
      const n = Math.min(len, 1 + Math.floor(Math.random() * 3 * 1024 * 1024), data.length - pos); // short reads
      data.copy(into, off, pos, pos + n);
      pos += n;
      return n;
    });
    const lens: number[] = [];
    for (let c = await sc.next(); c; c = await sc.next()) lens.push(c.length);
    assert.deepEqual(lens, chunker.split(data).map((c) => c.length));
  });

  it('chunks manifests finer', () => {
    const t = new Chunker(TREE_CHUNKS, seed).split(data.subarray(0, 4 * 1024 * 1024));
    const mean = (4 * 1024 * 1024) / t.length;
    assert.ok(mean > 3 * 1024 && mean < 8 * 1024, `mean ${mean}`);
  });
});

describe('backup codec', () => {
  it('round-trips, compresses what compresses, and detects changes', async () => {
    const codec = new Codec(newMasterKey());
    const text = Buffer.from('hello backup '.repeat(10_000));
    const id = codec.id(text);
    const enc = await codec.encode(text, id);
    assert.ok(enc.length < text.length / 10, 'text is compressed');
    assert.ok((await codec.decode(enc, id, 'x')).equals(text));
    const flipped = Buffer.from(enc);
    flipped[flipped.length >> 1]! ^= 1;
    await assert.rejects(codec.decode(flipped, id, 'x'), (e: Error & { code?: string }) => e.code === 'corrupt');
    await assert.rejects(codec.decode(enc, randomBytes(32), 'x'), (e: Error & { code?: string }) => e.code === 'corrupt', 'bound to its id');
    const rnd = randomBytes(100_000);
    assert.ok((await codec.encode(rnd)).length <= rnd.length + 40, 'random data is stored, not inflated');
    // keyed ids: another key names the same content differently
    assert.notDeepEqual(new Codec(newMasterKey()).id(text), id);
    assert.deepEqual(new Codec(null).id(text), createHash('sha256').update(text).digest());
  });

  it('seals every object under a nonce of its own, also across the refills of the nonce pool', () => {
    const key = newMasterKey().enc;
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(seal(key, Buffer.from('same plain text')).subarray(0, 12).toString('hex'));
    assert.equal(seen.size, 2000, 'no nonce repeats (the pool holds 341 of them)');
  });

  it('writes chunks with zstd and still reads what earlier versions wrote with brotli', async () => {
    const text = Buffer.from('a line of a log file, 0123456789\n'.repeat(30_000)); // ~1 MiB, like a chunk
    for (const key of [newMasterKey(), null]) {
      const codec = new Codec(key);
      const id = codec.id(text);
      const aad = key ? id : undefined;
      const enc = codec.encodeSync(text, aad);
      assert.ok(enc.length < text.length / 20, 'compressed');
      if (!key) {
        assert.equal(enc[0], 2, 'format byte 2: zstd');
        assert.equal(enc.byteLength, enc.buffer.byteLength, 'unsealed output is a buffer of its own, not a view of a larger one');
      }
      assert.ok(codec.decodeSync(enc, aad, 'x', text.length).equals(text));
      assert.ok(codec.decodeSync(enc, aad, 'x').equals(text), 'size from the frame');
      assert.ok((await codec.decode(enc, aad, 'x')).equals(text));
      assert.ok(codec.openChunkSync(id.toString('hex'), 'p', text.length, enc).equals(text));
      // a chunk whose frame holds more than the index says is damage, reported as such
      assert.throws(() => codec.openChunkSync(id.toString('hex'), 'p', text.length - 1, enc), (e: Error & { code?: string }) => e.code === 'corrupt' && /cannot decompress/.test(e.message));
      // what a Ferry before zstd wrote: format byte 1 and brotli
      const old = Buffer.concat([Buffer.from([1]), brotliCompressSync(text)]);
      const stored = key ? seal(key.enc, old, aad) : old;
      assert.ok(codec.decodeSync(stored, aad, 'x', text.length).equals(text));
      assert.ok((await codec.decode(stored, aad, 'x')).equals(text));
      // a format byte from a newer version: a clear error, not a crash
      const future = Buffer.concat([Buffer.from([7]), text.subarray(0, 100)]);
      assert.throws(() => codec.decodeSync(key ? seal(key.enc, future, aad) : future, aad, 'chunk c'), (e: Error & { code?: string }) => e.code === 'corrupt' && /unknown compression 7 .*newer version of Ferry/.test(e.message));
      if (!key) {
        // damaged zstd frames: a cut one cannot be decompressed; a changed one fails at least the id check
        assert.throws(() => codec.decodeSync(enc.subarray(0, enc.length - 10), undefined, 'chunk d', text.length), (e: Error & { code?: string }) => e.code === 'corrupt' && /chunk d: cannot decompress/.test(e.message));
        const bad = Buffer.from(enc);
        bad[bad.length >> 1]! ^= 0xff;
        assert.throws(() => codec.openChunkSync(id.toString('hex'), 'p', text.length, bad), (e: Error & { code?: string }) => e.code === 'corrupt');
      }
    }
  });

  it('hands out stored chunks of their own though zstd reuses its buffers, and raw chunks sealed with their format byte', () => {
    // zstd writes into one buffer per thread: a stored chunk that were a view of it would be overwritten
    // by the next chunk while it waits in a pack
    const a = Buffer.from('the first chunk, 0123456789\n'.repeat(40_000));
    const b = Buffer.from('a second and different chunk\n'.repeat(40_000));
    const random = randomBytes(256 * 1024); // incompressible: stored raw, format byte 0
    for (const key of [newMasterKey(), null]) {
      const codec = new Codec(key);
      const [ia, ib, ir] = [codec.id(a), codec.id(b), codec.id(random)];
      const ea = codec.encodeSync(a, key ? ia : undefined);
      const copyOfEa = Buffer.from(ea);
      const eb = codec.encodeSync(b, key ? ib : undefined);
      const er = codec.encodeSync(random, key ? ir : undefined);
      assert.ok(ea.equals(copyOfEa), 'a later encode leaves an earlier stored chunk as it was');
      if (!key) assert.equal(er[0], 0, 'format byte 0: raw');
      // a restore's writer opens one chunk after the other: each result is right when it is used
      assert.ok(codec.openChunkSync(ia.toString('hex'), 'p', a.length, ea).equals(a));
      assert.ok(codec.openChunkSync(ib.toString('hex'), 'p', b.length, eb).equals(b));
      assert.ok(codec.openChunkSync(ir.toString('hex'), 'p', random.length, er).equals(random));
      assert.ok(codec.decodeSync(ea, key ? ia : undefined, 'x', a.length).equals(a), 'without reuse a buffer of its own');
    }
  });

  it('keeps brotli for everything but chunks, so that a host without zstd still opens the repository', async () => {
    const codec = new Codec(null);
    const big = Buffer.from('{"tree":"entries"},'.repeat(20_000)); // 380 KiB, like an index file: thread pool
    const small = big.subarray(0, 100_000); // a snapshot, a lock: on the calling thread
    for (const obj of [big, small]) {
      const enc = await codec.encode(obj);
      assert.equal(enc[0], 1);
      assert.ok((await codec.decode(enc, undefined, 'x')).equals(obj));
    }
  });
});

describe('backup manifest', () => {
  it('serialises the same bytes as one JSON line per node joined, and reads them back across its decode blocks', () => {
    // the bytes name the tree's chunks: the same manifest must give the same bytes as earlier versions did,
    // or every backup after an upgrade would store its whole manifest again
    const names = ['plain.txt', 'Főtanúsítvány.crt', 'emoji-😀', 'quote"and\\backslash', 'tab\there', '日本語'];
    const nodes: ScannedNode[] = [{ path: '.', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '1700000000000000000' }];
    for (let i = 0; i < 3000; i++) {
      const n: ScannedNode = { path: `d${i % 40}/${names[i % names.length]}-${i}`, type: 'file', mode: 0o644, uid: 1000, gid: 1000, mtime: `${1700000000000000000n + BigInt(i)}`, size: i, ino: i + 2, ctime: '1700000000000000001', content: [randomBytes(32).toString('hex'), 4096] };
      if (i % 500 === 7) n.linkKey = `2049:${i}`; // scan-only: never written
      nodes.push(n);
    }
    // large files with long names of three-byte characters: more than the buffer first taken, so it grows
    for (let i = 0; i < 40; i++) nodes.push({ path: `big/${'日'.repeat(2000 + i)}`, type: 'file', mode: 0o600, uid: 0, gid: 0, mtime: '1', size: 1, content: Array.from({ length: 300 }, () => randomBytes(32).toString('hex')) });
    const bytes = serializeTree(nodes);
    const expected = Buffer.from(nodes.map(({ linkKey: _k, ...rest }) => JSON.stringify(rest)).join('\n') + '\n');
    assert.ok(bytes.length > 4 * 64 * 1024, 'larger than several decode blocks');
    assert.ok(bytes.equals(expected));
    assert.deepEqual(parseTree(bytes), nodes.map(({ linkKey: _k, ...rest }) => rest));
    assert.deepEqual(parseTree(bytes.subarray(0, bytes.length - 1)).length, nodes.length, 'a last line without its newline is read too');
    assert.deepEqual(parseTree(Buffer.alloc(0)), []);
    // as the chunks a manifest is stored in: cut anywhere, inside a line, a UTF-8 character or a newline's
    // neighbours, with chunks holding no newline at all (the big lines above are ~36 KiB)
    const want = nodes.map(({ linkKey: _k, ...rest }) => rest);
    for (const sizes of [[1], [7, 1, 13], [5000], [70_000, 3], [Math.floor(bytes.length / 2)]]) {
      const parts: Buffer[] = [];
      for (let at = 0, k = 0; at < bytes.length; k++) {
        const n = sizes[k % sizes.length]!;
        parts.push(bytes.subarray(at, at + n));
        at += n;
      }
      assert.deepEqual(parseTree(parts), want, `chunks of ${sizes.join(', ')} bytes`);
    }
    assert.deepEqual(parseTree([bytes.subarray(0, 10), Buffer.alloc(0), bytes.subarray(10, bytes.length - 1)]), want, 'an empty chunk; no newline at the end');
    assert.deepEqual(parseTree([]), []);
    // one line longer in UTF-8 than the buffer first taken, though not in UTF-16 code units
    const one: ScannedNode[] = [{ path: '日'.repeat(1000), type: 'dir', mode: 0o700, uid: 0, gid: 0, mtime: '1' }];
    assert.ok(serializeTree(one).equals(Buffer.from(JSON.stringify(one[0]) + '\n')));
  });
});

describe('backup URLs and targets', () => {
  it('parses and formats', () => {
    assert.deepEqual(parseBackupUrl('file:///srv/backups/ferry?backup=abcd1234&volume=db'), { target: 'file:///srv/backups/ferry', backup: 'abcd1234', volume: 'db' });
    assert.deepEqual(parseBackupUrl('s3://bucket/some/prefix?backup=ab12&volume=web-data'), { target: 's3://bucket/some/prefix', backup: 'ab12', volume: 'web-data' });
    assert.deepEqual(parseBackupUrl('s3://bucket'), { target: 's3://bucket', backup: undefined, volume: undefined });
    assert.equal(formatBackupUrl('s3://bucket/p/', 'ab12', 'db'), 's3://bucket/p?backup=ab12&volume=db');
    assert.equal(formatBackupUrl('file:///srv/b', 'ab12', 'a b'), 'file:///srv/b?backup=ab12&volume=a%20b');
    const round = parseBackupUrl(formatBackupUrl('file:///srv/b', 'ab12', 'a b'));
    assert.equal(round.volume, 'a b');
    for (const bad of ['http://x/y', 'not a url', 's3://b/p?backup=zz', 's3://b/p?foo=1', 'file://host/x?backup=abcd']) {
      assert.throws(() => parseBackupUrl(bad), (e: Error & { code?: string }) => e.code === 'invalid', bad);
    }
  });

  it('builds targets from URLs', () => {
    const f = openTarget('file:///srv/backups/ferry');
    assert.ok(f instanceof FileTarget);
    assert.equal((f as FileTarget).root, '/srv/backups/ferry');
    const s = openTarget('s3://bucket/pre/fix', { s3: { endpoint: 'http://127.0.0.1:1', pathStyle: true, accessKeyId: 'a', secretAccessKey: 'b' } });
    assert.ok(s instanceof S3Target);
    assert.equal((s as S3Target).prefix, 'pre/fix');
    assert.equal(s.url, 's3://bucket/pre/fix');
    s.close();
    assert.throws(() => openTarget('ftp://x'), /unsupported/);
  });
});
