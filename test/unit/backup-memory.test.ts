// The backup engine against an in-memory target: backup, restore, verify and prune without a disk repository.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, open, runBackup, runRestore, runVerify, runPrune, takeLock, MemoryTarget, type Repository } from '../../src/backup/index.js';
import { forEachLimit } from '../../src/util/parallel.js';
import { FerryError } from '../../src/util/errors.js';
import { seal } from '../../src/backup/crypto.js';

const cheap = { N: 1024, r: 8, p: 1 };
const code = (c: string) => (e: unknown) => e instanceof FerryError && e.code === c;

/** sha256 of every file under dir, by relative path. */
async function digest(dir: string, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(out, await digest(dir, p));
    else out[p] = createHash('sha256').update(await readFile(join(dir, p))).digest('hex');
  }
  return out;
}

describe('backup engine on a memory target', () => {
  let tmp: string;
  let src: string;
  let target: MemoryTarget;
  let repo: Repository;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'ferry-memrepo-'));
    src = join(tmp, 'src');
    await mkdir(join(src, 'a/b'), { recursive: true });
    await writeFile(join(src, 'big.bin'), randomBytes(5 * 1024 * 1024));
    await writeFile(join(src, 'a/small.txt'), 'hello');
    await writeFile(join(src, 'a/b/empty'), '');
    for (let i = 0; i < 50; i++) await writeFile(join(src, 'a', `f${i}`), randomBytes(1000 + i));
    target = new MemoryTarget();
    repo = await init(target, { password: 'pw', kdf: cheap });
  });
  after(async () => {
    repo.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('restores what it backed up, byte for byte, and the second backup adds only what changed', async () => {
    const first = await runBackup(repo, src, { volume: 'v' });
    assert.equal(first.files, 53);
    await writeFile(join(src, 'a/small.txt'), 'changed');
    const second = await runBackup(repo, src, { volume: 'v' });
    assert.equal(second.parent, first.id);
    // the changed file and the manifest's changed chunks; not the 5 MiB file again
    assert.ok(second.bytesNew < first.bytesNew / 100, `second backup stored ${second.bytesNew} new bytes (first ${first.bytesNew})`);
    const out = join(tmp, 'out');
    // a new handle on the same objects: nothing is cached in the first one
    const again = await open(target, { password: 'pw' });
    await runRestore(again, second.id, out);
    assert.deepEqual(await digest(out), await digest(src));
    assert.equal((await again.list({ volume: 'v' })).length, 2);
    assert.ok((await runVerify(again, { readData: true })).ok);
  });

  it('verify names the backups a damaged pack hurts; prune after a remove keeps what the rest need', async () => {
    const packs = [...target.objects.keys()].filter((n) => n.startsWith('data/'));
    assert.ok(packs.length > 0);
    const [victim] = packs;
    const saved = target.objects.get(victim!)!;
    const damaged = Buffer.from(saved);
    damaged[20]! ^= 0xff;
    target.objects.set(victim!, damaged);
    const report = await runVerify(repo, { readData: true });
    assert.equal(report.ok, false);
    const problem = report.problems.find((p) => p.kind === 'corrupt-pack');
    assert.ok(problem && problem.backups.length > 0, JSON.stringify(report.problems));
    target.objects.set(victim!, saved);

    const [oldest] = await repo.list({ volume: 'v' });
    await repo.remove(oldest!.id);
    const pruned = await runPrune(repo);
    assert.equal(pruned.staleLocksRemoved, 0);
    const [left] = await repo.list({ volume: 'v' });
    const out = join(tmp, 'after-prune');
    await runRestore(repo, left!.id, out);
    assert.deepEqual(await digest(out), await digest(src));
    assert.ok((await runVerify(repo, { readData: true })).ok);
  });

  it('a prune is refused while a backup holds its shared lock, and leaves no lock behind', async () => {
    const held = await takeLock(repo, false, 'backup of v');
    try {
      await assert.rejects(runPrune(repo), code('in_use'));
    } finally {
      await held();
    }
    await runPrune(repo);
    assert.deepEqual([...target.objects.keys()].filter((n) => n.startsWith('locks/')), []);
  });

  it('a lock in a format this version cannot read (a newer Ferry) blocks, and is neither ignored nor removed', async () => {
    // what a newer Ferry might write: a format byte this version does not know
    const framed = Buffer.concat([Buffer.from([9]), Buffer.from('{"host":"next","exclusive":false}')]);
    const name = `locks/${'e'.repeat(32)}`;
    target.objects.set(name, repo.codec.key ? seal(repo.codec.key.enc, framed, Buffer.from('ferry lock')) : framed);
    try {
      const newer = (e: unknown) => code('in_use')(e) && /locked by a newer version of Ferry \(lock e{32} uses format 9.*remove locks\/e{32} if no newer Ferry/.test((e as Error).message);
      await assert.rejects(takeLock(repo, true, 'prune'), newer);
      await assert.rejects(takeLock(repo, false, 'backup of v'), newer);
      await assert.rejects(runPrune(repo), newer);
      assert.deepEqual([...target.objects.keys()].filter((n) => n.startsWith('locks/')), [name], 'its lock stays; ours were taken back');
    } finally {
      target.objects.delete(name);
    }
  });
});

describe('manifests of many files', () => {
  it('a change spread over 1 % of the files stores a part of the manifest again, which is read back in a few requests', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'ferry-memtree-'));
    try {
      const src = join(tmp, 'src');
      for (let d = 0; d < 30; d++) {
        await mkdir(join(src, `dir-${d}`), { recursive: true });
        for (let i = 0; i < 100; i++) await writeFile(join(src, `dir-${d}`, `file-${i}.txt`), randomBytes(100));
      }
      const target = new MemoryTarget();
      const repo = await init(target, { password: 'pw', kdf: cheap });
      try {
        await runBackup(repo, src, { volume: 'v' });
        for (let k = 0; k < 3000; k += 100) await writeFile(join(src, `dir-${Math.floor(k / 100)}`, `file-${k % 100}.txt`), randomBytes(100));
        const second = await runBackup(repo, src, { volume: 'v' });
        const snap = await repo.loadSnapshot(second.id);
        const treeBytes = snap.tree.reduce((n, id) => n + repo.index.get(id)!.raw, 0);
        assert.ok(snap.tree.length > 50, `the manifest is ${snap.tree.length} chunks`);
        // 30 files of 100 bytes changed (1 %): what the second backup stored is mostly manifest, and well under all of it (measured: 38-46 %; chunks of 64 KiB: all of it)
        assert.ok(second.bytesNew < treeBytes * 0.6, `the second backup stored ${second.bytesNew} bytes, the manifest is ${treeBytes} in ${snap.tree.length} chunks`);

        // a new handle (nothing cached) reads the manifest's chunks in one request per run of them in a pack
        const again = await open(target, { password: 'pw' });
        await again.index.load(true);
        const packs = new Set(snap.tree.map((id) => again.index.get(id)!.pack));
        let requests = 0;
        const getRange = target.getRange.bind(target);
        target.getRange = (name, offset, length) => (requests++, getRange(name, offset, length));
        const nodes = await again.loadTree(snap);
        assert.equal(nodes.filter((n) => n.type === 'file').length, 3000);
        assert.ok(requests <= packs.size * 2, `${requests} requests for ${snap.tree.length} chunks in ${packs.size} pack(s)`);
        again.close();
      } finally {
        repo.close();
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('forEachLimit', () => {
  it('never settles while a call runs, and with stopOnError starts nothing after a failure', async () => {
    const started: number[] = [];
    let running = 0;
    let maxRunning = 0;
    const p = forEachLimit(
      Array.from({ length: 20 }, (_, i) => i),
      3,
      async (i) => {
        started.push(i);
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, i === 1 ? 1 : 20));
        running--;
        if (i === 1) throw new Error('item 1 failed');
      },
      { stopOnError: true },
    );
    await assert.rejects(p, /item 1 failed/);
    assert.equal(running, 0);
    assert.equal(maxRunning, 3);
    assert.ok(started.length < 20, `started ${started.length}`);
  });

  it('by default tries every item and rejects with the first failure', async () => {
    const seen: number[] = [];
    await assert.rejects(
      forEachLimit([1, 2, 3, 4], 2, async (i) => {
        seen.push(i);
        if (i % 2 === 0) throw new Error(`item ${i}`);
      }),
      /item 2/,
    );
    assert.deepEqual(seen.sort(), [1, 2, 3, 4]);
  });
});
