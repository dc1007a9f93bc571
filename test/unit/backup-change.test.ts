// Backups read files in worker threads, skip unchanged files by (size, mtime, ctime, inode), and store incompressible chunks raw: none of it may lose a change or a byte.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, runBackup, runRestore, MemoryTarget, type Repository, type BackupProgress } from '../../src/backup/index.js';
import { Chunker, DATA_CHUNKS } from '../../src/backup/chunker.js';
import { Codec, compressible, newMasterKey } from '../../src/backup/crypto.js';
import { readChunks, type ReadAnswer } from '../../src/backup/encode-worker.js';
import { EncoderPool } from '../../src/backup/encoder-pool.js';
import { runVerify } from '../../src/backup/verify.js';

const cheap = { N: 1024, r: 8, p: 1 };

/** Deterministic data that does not compress. */
function pseudoRandom(n: number, key = 'x'): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let off = 0, i = 0; off < n; i++) off += createHash('sha512').update(`${key}:${i}`).digest().copy(out, off);
  return out;
}

describe('reading and cutting files in a worker (readChunks)', () => {
  it('cuts a file read window by window exactly as one pass over the whole of it, with zero runs apart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-readchunks-'));
    try {
      // 40 MiB: random, then 10 MiB of zeros (forced cuts at max), then random: several windows
      const data = Buffer.concat([pseudoRandom(17 * 1024 * 1024, 'a'), Buffer.alloc(10 * 1024 * 1024), pseudoRandom(13 * 1024 * 1024 + 123, 'b')]);
      const file = join(dir, 'f');
      await writeFile(file, data);
      const codec = new Codec(newMasterKey());
      const chunker = new Chunker(DATA_CHUNKS, codec.chunkerSeed());
      const held = new Map<number, Buffer>();
      let token = 0;
      const window = Buffer.allocUnsafe(2 * DATA_CHUNKS.max);
      const got: Array<number | string> = [];
      let reads = 0;
      for (let offset = 0; offset >= 0; reads++) {
        const a: ReadAnswer = readChunks(codec, chunker, window, file, offset, (b) => (held.set(++token, Buffer.from(b)), token));
        for (const c of a.chunks) {
          if (typeof c === 'number') got.push(c);
          else {
            const bytes = held.get(c.token)!;
            assert.equal(codec.id(bytes).toString('hex'), c.id, 'the id names the bytes held');
            assert.equal(bytes.length, c.size);
            got.push(c.id);
          }
        }
        offset = a.next;
      }
      assert.ok(reads >= 3, `${reads} reads`);
      const want = chunker.split(data).map((c) => (Buffer.from(c).equals(Buffer.alloc(c.length)) ? c.length : codec.id(c).toString('hex')));
      assert.deepEqual(got, want);
      assert.deepEqual(readChunks(codec, chunker, window, join(dir, 'gone'), 0, () => 0), { chunks: [], next: -1, vanished: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('reads that encode at once (a first backup: nearly every chunk is new)', () => {
  it('a worker answers each chunk stored, named by its id and sealed with it, and keeps nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-readencode-'));
    const codec = new Codec(newMasterKey());
    const chunker = new Chunker(DATA_CHUNKS, codec.chunkerSeed());
    const pool = new EncoderPool(codec.key, 1, { chunker, seed: codec.chunkerSeed() });
    try {
      const data = Buffer.concat([pseudoRandom(9 * 1024 * 1024, 'e'), Buffer.from('compressible text, '.repeat(200_000))]);
      await writeFile(join(dir, 'f'), data);
      const parts: Buffer[] = [];
      for (let offset = 0; offset >= 0; ) {
        const { answer } = await pool.read(join(dir, 'f'), offset, true);
        for (const c of answer.chunks) {
          assert.ok(typeof c !== 'number' && c.stored, 'every chunk comes stored');
          assert.equal(c.token, 0, 'nothing is held');
          const plain = codec.decodeSync(c.stored, Buffer.from(c.id, 'hex'), c.id, c.size);
          assert.equal(codec.id(plain).toString('hex'), c.id);
          parts.push(plain);
        }
        offset = answer.next;
      }
      assert.ok(Buffer.concat(parts).equals(data), 'the stored chunks decode to the file, byte for byte');
    } finally {
      await pool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a first backup with the same files many times stores each chunk once and restores byte for byte', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'ferry-firstdup-'));
    const repo = await init(new MemoryTarget(), { password: 'pw', kdf: cheap });
    try {
      const src = join(tmp, 'src');
      const big = pseudoRandom(5 * 1024 * 1024, 'dup');
      for (let d = 0; d < 4; d++) {
        await mkdir(join(src, `copy${d}`), { recursive: true });
        await writeFile(join(src, `copy${d}`, 'big'), big);
        for (let i = 0; i < 50; i++) await writeFile(join(src, `copy${d}`, `small${i}`), `file ${i}\n`.repeat(100 + i));
      }
      // walked first (names are sorted) and read all at once while every chunk still looks new: 59 of them
      // turn out known when their encoded answer comes back, and are dropped
      await mkdir(join(src, 'a-same'));
      for (let i = 0; i < 60; i++) await writeFile(join(src, 'a-same', `f${i}`), 'the same content\n'.repeat(500));
      // the reads of a first backup come back encoded (counted: otherwise this would test the held path)
      let encodedReads = 0;
      const read = EncoderPool.prototype.read;
      EncoderPool.prototype.read = function (path: string, offset: number, encode = false) {
        if (encode) encodedReads++;
        return read.call(this, path, offset, encode);
      };
      const info = await runBackup(repo, src, { volume: 'dup' }).finally(() => (EncoderPool.prototype.read = read));
      assert.ok(encodedReads >= 60, `reads that encode at once: ${encodedReads}`);
      const once = big.length + Array.from({ length: 50 }, (_, i) => `file ${i}\n`.repeat(100 + i).length).reduce((a, b) => a + b, 0) + 'the same content\n'.length * 500;
      // (bytesNew also counts the manifest's chunks: ~270 entries)
      assert.ok(info.bytesNew >= once && info.bytesNew < once + 128 * 1024, `four copies of ${once} bytes stored once: ${info.bytesNew} new`);
      const out = join(tmp, 'out');
      await runRestore(repo, info.id, out);
      for (let d = 0; d < 4; d++) {
        assert.ok((await readFile(join(out, `copy${d}`, 'big'))).equals(big));
        assert.equal(await readFile(join(out, `copy${d}`, 'small49'), 'utf8'), 'file 49\n'.repeat(149));
      }
      for (let i = 0; i < 60; i += 59) assert.equal(await readFile(join(out, 'a-same', `f${i}`), 'utf8'), 'the same content\n'.repeat(500));
      const v = await runVerify(repo, { readData: true });
      assert.deepEqual(v.problems, []);
    } finally {
      repo.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('compression probe', () => {
  it('finds random data incompressible and text compressible; both decode to what went in', () => {
    const random = pseudoRandom(1024 * 1024);
    const text = Buffer.from('the quick brown fox jumps over the lazy dog, again and again; '.repeat(20_000));
    assert.equal(compressible(random), false);
    assert.equal(compressible(text), true);
    const codec = new Codec(newMasterKey());
    const aad = Buffer.from('id');
    const r = codec.encodeSync(random, aad);
    const t = codec.encodeSync(text, aad);
    assert.ok(r.length > random.length && r.length < random.length + 64, 'random data is stored raw');
    assert.ok(t.length < text.length / 10, 'text is compressed');
    assert.ok(codec.decodeSync(r, aad, 'r').equals(random));
    assert.ok(codec.decodeSync(t, aad, 't').equals(text));
  });
});

describe('unchanged files are skipped, changed ones never', () => {
  let tmp: string;
  let src: string;
  let repo: Repository;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'ferry-change-'));
    src = join(tmp, 'src');
    await mkdir(join(src, 'd'), { recursive: true });
    for (let i = 0; i < 20; i++) await writeFile(join(src, 'd', `f${i}`), randomBytes(3000));
    await writeFile(join(src, 'big'), randomBytes(2 * 1024 * 1024));
    repo = await init(new MemoryTarget(), { password: 'pw', kdf: cheap });
  });
  after(async () => {
    repo.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('reads nothing when nothing changed, and reads a file rewritten with the same size and mtime restored', async () => {
    const first = await runBackup(repo, src, { volume: 'v' });
    let last: BackupProgress | undefined;
    const same = await runBackup(repo, src, { volume: 'v', onProgress: (p) => (last = p) });
    assert.equal(same.parent, first.id);
    assert.equal(last!.bytesRead, 0, 'an unchanged tree is not read again');

    // same size, new content, mtime put back: the ctime (which no one can set) still tells
    const f = join(src, 'd', 'f7');
    const before = await stat(f, { bigint: true });
    const content = randomBytes(3000);
    await writeFile(f, content);
    await utimes(f, before.atime, before.mtime);
    // same size and mtime again, a new inode (a file replaced by rename)
    const g = join(src, 'big');
    const gBefore = await stat(g);
    const gContent = randomBytes(2 * 1024 * 1024);
    await writeFile(join(src, '.new'), gContent);
    await utimes(join(src, '.new'), gBefore.atime, gBefore.mtime);
    await rename(join(src, '.new'), g);

    const third = await runBackup(repo, src, { volume: 'v', onProgress: (p) => (last = p) });
    assert.equal(third.parent, same.id);
    assert.equal(last!.bytesRead, 3000 + 2 * 1024 * 1024, 'exactly the two changed files are read');
    const out = join(tmp, 'out');
    await runRestore(repo, third.id, out);
    assert.ok((await readFile(join(out, 'd', 'f7'))).equals(content));
    assert.ok((await readFile(join(out, 'big'))).equals(gContent));
    assert.ok((await readFile(join(out, 'd', 'f3'))).equals(await readFile(join(src, 'd', 'f3'))));
  });
});

describe('a share that may hang (mayHang): files read through the child process, cut on the calling thread', () => {
  it('stores the same chunks as the worker path: a backup of the same tree adds nothing, and restores byte for byte', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'ferry-mayhang-'));
    const repo = await init(new MemoryTarget(), { password: 'pw', kdf: cheap });
    try {
      const src = join(tmp, 'src');
      await mkdir(join(src, 'd'), { recursive: true });
      await writeFile(join(src, 'd', 'small'), 'hello');
      await writeFile(join(src, 'zeros'), Buffer.alloc(3 * 1024 * 1024));
      await writeFile(join(src, 'big'), pseudoRandom(20 * 1024 * 1024, 'm'));
      const viaWorkers = await runBackup(repo, src, { volume: 'w' });
      const viaChild = await runBackup(repo, src, { volume: 'c', mayHang: true });
      assert.equal(viaChild.bytesNew, 0, 'the child-process path cuts and names chunks as the workers do');
      const out = join(tmp, 'out');
      await runRestore(repo, viaChild.id, out);
      for (const f of ['d/small', 'zeros', 'big']) assert.ok((await readFile(join(out, f))).equals(await readFile(join(src, f))), f);
      assert.ok(viaWorkers.bytesNew > 20 * 1024 * 1024 - 1);
    } finally {
      repo.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

