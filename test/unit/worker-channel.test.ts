// The worker channel: answers by id, coded errors across the thread boundary, progress per request, and a dead worker failing what waits on it.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { WorkerChannel } from '../../src/util/worker-channel.js';
import { FerryError } from '../../src/util/errors.js';
import { EncoderPool } from '../../src/backup/encoder-pool.js';
import type { TestRequest } from '../helpers/channel-worker.js';
import type { WriterAck, WriterMsg, WriterSetup } from '../../src/backup/restore-worker.js';
import { packPath } from '../../src/backup/pack.js';
import { createHash } from 'node:crypto';
import { Writer } from '../../src/backup/restore.js';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('worker channel', () => {
  const open: Array<WorkerChannel<TestRequest, unknown, number>> = [];
  const channel = () => {
    const c = new WorkerChannel<TestRequest, unknown, number>(new Worker(new URL('../helpers/channel-worker.js', import.meta.url)), 'test');
    open.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });

  it('answers a request with its result', async () => {
    const c = channel();
    assert.deepEqual(await c.request({ op: 'echo', v: { a: [1, 2], b: 'x' } }), { a: [1, 2], b: 'x' });
    assert.equal(c.pending, 0);
  });

  it('rejects with the FerryError the worker threw, code and details kept', async () => {
    const c = channel();
    await assert.rejects(c.request({ op: 'fail', coded: true }), (e: unknown) => {
      assert.ok(e instanceof FerryError);
      assert.equal(e.code, 'corrupt');
      assert.equal(e.message, 'pack p1 is damaged');
      assert.deepEqual(e.details, { pack: 'p1' });
      return true;
    });
    await assert.rejects(c.request({ op: 'fail', coded: false }), (e: unknown) => !(e instanceof FerryError) && (e as Error).message === 'plain failure');
    // the worker is still there for the next request
    assert.equal(await c.request({ op: 'echo', v: 7 }), 7);
  });

  it('gives progress to the request it belongs to', async () => {
    const c = channel();
    const a: number[] = [];
    const b: number[] = [];
    const [ra, rb] = await Promise.all([c.request({ op: 'count', n: 3 }, { onProgress: (p) => a.push(p) }), c.request({ op: 'count', n: 2 }, { onProgress: (p) => b.push(p) })]);
    assert.deepEqual([ra, rb], [3, 2]);
    assert.deepEqual(a, [1, 2, 3]);
    assert.deepEqual(b, [1, 2]);
  });

  it('matches answers that come out of order to their requests', async () => {
    const c = channel();
    let firstSettled = false;
    const first = c.request({ op: 'hold', key: 'k' });
    void first.finally(() => (firstSettled = true));
    assert.equal(await c.request({ op: 'echo', v: 'second' }), 'second');
    assert.equal(firstSettled, false);
    assert.equal(await c.request({ op: 'release', key: 'k', v: 'first' }), 'released');
    assert.equal(await first, 'first');
  });

  it('rejects every waiting request, and later ones, when the worker exits', async () => {
    const c = channel();
    const held = c.request({ op: 'hold', key: 'never' });
    const exiting = c.request({ op: 'exit', code: 3 });
    await assert.rejects(held, /the test worker exited with code 3/);
    await assert.rejects(exiting, /the test worker exited with code 3/);
    assert.equal(c.pending, 0);
    assert.match(c.dead?.message ?? '', /exited with code 3/);
    await assert.rejects(c.request({ op: 'echo', v: 1 }), /the test worker exited with code 3/);
  });

  it('rejects waiting requests when the worker is terminated', async () => {
    const c = channel();
    const held = c.request({ op: 'hold', key: 'never' });
    await c.worker.terminate();
    await assert.rejects(held, /the test worker exited with code \d+/);
  });
});

describe('encoder pool', () => {
  it('fails its callers, rather than leaving them waiting, when a worker dies', async () => {
    const pool = new EncoderPool(null, 1);
    try {
      assert.ok((await pool.encode(Buffer.from('before'))).length > 0);
      const waiting = pool.encode(Buffer.from('a chunk'));
      await pool.channels[0]!.worker.terminate();
      await assert.rejects(waiting, /the encoder worker exited with code \d+/);
      await assert.rejects(pool.encode(Buffer.from('after')), /the encoder worker exited/);
    } finally {
      await pool.close();
    }
  });
});

describe('restore writer worker', () => {
  it('answers a batch with the bytes it released, and a corrupt chunk with a coded error that stays', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-writer-'));
    const c = new WorkerChannel<WriterMsg[], WriterAck>(new Worker(new URL('../../src/backup/restore-worker.js', import.meta.url), { workerData: { key: null } satisfies WriterSetup }), 'restore writer');
    try {
      const empty = join(dir, 'empty');
      const ack = await c.request([
        { t: 'open', id: 1, path: empty },
        { t: 'close', id: 1, size: 0, uid: process.getuid!(), gid: process.getgid!(), mode: 0o640, atime: 1, mtime: 2 },
      ]);
      assert.equal(ack.bytes, 0);
      assert.equal((await readFile(empty)).length, 0);
      const bad = [
        { t: 'open', id: 2, path: join(dir, 'bad') },
        { t: 'write', id: 2, pos: 0, stored: new Uint8Array([1, 2, 3]), blob: '00'.repeat(32), pack: 'p9', raw: 3 },
      ] satisfies WriterMsg[];
      const corrupt = (e: unknown) => e instanceof FerryError && e.code === 'corrupt' && e.details?.['pack'] === 'p9';
      await assert.rejects(c.request(bad), corrupt);
      // once a batch failed, the writer refuses the rest of the restore with the same error
      await assert.rejects(c.request([{ t: 'open', id: 3, path: join(dir, 'later') }]), corrupt);
    } finally {
      await c.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
  it("reads chunks from the packs of a target on this host itself, and names a pack cut short", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-writer-'));
    const repo = join(dir, 'repo');
    const setup: WriterSetup = { key: null, local: { dir: repo, url: 'file://' + repo } };
    const c = new WorkerChannel<WriterMsg[], WriterAck>(new Worker(new URL('../../src/backup/restore-worker.js', import.meta.url), { workerData: setup }), 'restore writer');
    try {
      // an unencrypted pack: a header, then one chunk stored as it is (the format byte 0, then its bytes)
      const plain = Buffer.from('the bytes of a restored file');
      const blob = createHash('sha256').update(plain).digest('hex');
      const stored = Buffer.concat([Buffer.from([0]), plain]);
      const pack = 'ab'.repeat(32);
      await mkdir(dirname(join(repo, packPath(pack))), { recursive: true });
      await writeFile(join(repo, packPath(pack)), Buffer.concat([Buffer.from('FERRYPK1'), stored]));
      const out = join(dir, 'out');
      const ack = await c.request([
        { t: 'open', id: 1, path: out },
        { t: 'read', id: 1, pos: 0, blob, pack, offset: 8, length: stored.length, raw: plain.length },
        { t: 'close', id: 1, size: plain.length, uid: process.getuid!(), gid: process.getgid!(), mode: 0o640, atime: 1, mtime: 2 },
      ]);
      assert.deepEqual(await readFile(out), plain);
      assert.deepEqual(ack, { bytes: stored.length, raw: plain.length, ownerDenied: false });
      const cut = c.request([
        { t: 'open', id: 2, path: join(dir, 'cut') },
        { t: 'read', id: 2, pos: 0, blob, pack, offset: 9, length: stored.length, raw: plain.length },
      ]);
      await assert.rejects(cut, (e: unknown) => e instanceof FerryError && e.code === 'corrupt' && e.details?.['pack'] === pack && /is truncated/.test(e.message));
    } finally {
      await c.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('restore writer', () => {
  it('fails the restore, rather than leaving it waiting, when a writer thread dies', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-writer-'));
    const w = new Writer(2, { key: null });
    try {
      await w.send({ t: 'open', id: 0, path: join(dir, 'a') });
      await w.send({ t: 'open', id: 1, path: join(dir, 'b') });
      await w.channels[0]!.worker.terminate();
      await assert.rejects(w.drain(), /the restore writer worker exited with code \d+/);
      await assert.rejects(w.send({ t: 'open', id: 2, path: join(dir, 'c') }), /the restore writer worker exited/);
    } finally {
      await w.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails the last drain when a writer died while it had nothing to do (directory metadata would go unset)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-writer-'));
    const w = new Writer(2, { key: null });
    try {
      await w.channels[0]!.worker.terminate();
      await w.send({ t: 'meta', id: 0, path: dir, uid: 0, gid: 0, mode: 0o751, atime: 1, mtime: 1 });
      await assert.rejects(w.drain(), /the restore writer worker exited/);
    } finally {
      await w.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
