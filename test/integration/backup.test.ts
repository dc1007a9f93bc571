import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync, mkdtempSync, rmSync, writeFileSync, mkdirSync, openSync, writeSync, closeSync, readdirSync, statSync, readFileSync, chmodSync, utimesSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { init, open, type Repository, type BackupProgress, runBackup, runPrune, runRestore, runVerify, takeLock } from '../../src/backup/index.js';
import { FerryError } from '../../src/util/errors.js';
import { populate, fingerprint } from '../helpers/tree.js';
import { assertSameTree } from '../helpers/backup.js';
import { makeLoopFs, loopFsPrerequisites } from '../helpers/loopfs.js';

const here = dirname(fileURLToPath(import.meta.url));
const cheap = { N: 1 << 12, r: 8, p: 1 }; // tests: a cheap scrypt (the default costs ~0.25 s per open)
const MiB = 1024 * 1024;

function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath ?? e.path, e.name)).size;
  return n;
}

function packs(repoDir: string): string[] {
  return readdirSync(join(repoDir, 'data'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

const code = (c: string) => (e: unknown) => e instanceof FerryError && e.code === c;

describe('backups to a file target', () => {
  let tmp: string;
  let url: string;
  let repo: Repository;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'ferry-backup-'));
    url = pathToFileURL(join(tmp, 'repo')).href;
    repo = await init(url, { password: 'correct horse', kdf: cheap });
  });
  after(() => {
    repo?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('restores a tree byte for byte with all metadata (modes, owners, times, symlinks, hard links, empty dirs, sparse files, FIFOs)', async () => {
    const src = join(tmp, 'meta');
    mkdirSync(src);
    populate(src, 120);
    const progress: BackupProgress[] = [];
    const info = await runBackup(repo, src, { volume: 'meta', node: 'node-1', tags: ['t1'], snapshot: 'snap-1', onProgress: (p) => progress.push(p) });
    assert.match(info.id, /^[0-9a-f]{32}$/);
    assert.equal(info.url, `${url}?backup=${info.id}&volume=meta`);
    assert.equal(info.node, 'node-1');
    assert.deepEqual(info.tags, ['t1']);
    assert.equal(info.snapshot, 'snap-1');
    const last = progress.at(-1)!;
    assert.equal(last.filesDone, last.filesTotal);
    assert.equal(last.bytesDone, last.bytesTotal);
    assert.ok(last.bytesTotal > 64 * MiB, 'the sparse file counts with its size');
    assert.ok(info.bytesAdded < 8 * MiB, `sparse zeros are not stored (${info.bytesAdded} bytes added)`);

    const reopened = await open(url, { password: 'correct horse' });
    const out = join(tmp, 'meta-restored');
    const restoreProgress: number[] = [];
    const res = await runRestore(reopened, info.id.slice(0, 8), out, { onProgress: (p) => restoreProgress.push(p.bytesDone) });
    assert.deepEqual(res.warnings, []);
    assert.equal(restoreProgress.at(-1), last.bytesTotal);
    assertSameTree(src, out);
    assert.ok(statSync(join(out, 'sparse.img')).blocks * 512 < MiB, 'the sparse file is sparse again');
    const inspected = await reopened.inspect(info.id);
    assert.equal(inspected.id, info.id);
    assert.deepEqual((await reopened.list({ volume: 'meta' })).map((b) => b.id), [info.id]);
    assert.deepEqual(await reopened.list({ volume: 'other' }), []);
    reopened.close();
  });

  it('a restore run by a user who is not root brings back modes and times through directories it may not write or search, and says that owners were not restored', { skip: process.getuid?.() !== 0 || spawnSync('which', ['setpriv']).status !== 0 ? 'needs root and setpriv' : false }, async () => {
    const src = join(tmp, 'not-root');
    mkdirSync(src);
    populate(src, 30);
    // directories that keep their owner out once their mode is set: no write, and no search
    mkdirSync(join(src, 'read-only/deeper'), { recursive: true });
    writeFileSync(join(src, 'read-only/deeper/file'), 'below a directory its owner may not write');
    chmodSync(join(src, 'read-only'), 0o500);
    mkdirSync(join(src, 'no-search'));
    writeFileSync(join(src, 'no-search/file'), 'below a directory its owner may not search');
    mkdirSync(join(src, 'no-search/inner'), { mode: 0o750 });
    utimesSync(join(src, 'no-search/inner'), 1_500_000_200, 1_500_000_200);
    chmodSync(join(src, 'no-search'), 0o600);
    const info = await runBackup(repo, src, { volume: 'not-root' });

    // the repository and an empty target, as the user's (uid/gid 65534, nobody)
    const out = join(tmp, 'not-root-restored');
    mkdirSync(out);
    const repoDir = fileURLToPath(url);
    execFileSync('chown', ['-R', '65534:65534', repoDir, out]);
    chmodSync(tmp, 0o755); // (made 0700 by mkdtemp)
    try {
      const child = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(here, '../helpers/backup-child.js'), 'restore', url, 'correct horse', info.id, out], { encoding: 'utf8' });
      const res = JSON.parse(child) as { warnings: string[] };
      assert.deepEqual(res.warnings, ['owners not restored: not permitted (run as root)']);
      // everything but the owners: the restored entries belong to the user who restored them
      const norm = (fp: ReturnType<typeof fingerprint>) => {
        for (const e of Object.values(fp)) {
          e.uid = e.gid = 0;
          if (e.type !== 'dir') e.mtime = e.mtime.slice(0, -3);
        }
        return fp;
      };
      assert.deepEqual(norm(fingerprint(out)), norm(fingerprint(src)));
      assert.equal(statSync(join(out, 'no-search')).uid, 65534);
    } finally {
      execFileSync('chown', ['-R', '0:0', repoDir]);
      chmodSync(join(src, 'read-only'), 0o700);
      chmodSync(join(src, 'no-search'), 0o700);
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('an incremental backup after a 1% change adds about 1% to the target', async (t) => {
    const src = join(tmp, 'incr');
    mkdirSync(join(src, 'small'), { recursive: true });
    for (let i = 0; i < 10; i++) writeFileSync(join(src, `big-${i}.bin`), randomBytes(16 * MiB));
    for (let i = 0; i < 300; i++) writeFileSync(join(src, 'small', `f-${i}`), randomBytes(4096 + i * 13));
    const first = await runBackup(repo, src, { volume: 'incr' });
    const total = first.bytes;
    assert.ok(first.bytesAdded > total * 0.98, 'random data: the whole first backup is stored');

    // 1%: rewrite 1.5 MiB inside one big file, 3 small files, and add one of 64 KiB
    const fd = openSync(join(src, 'big-3.bin'), 'r+');
    writeSync(fd, randomBytes(1.5 * MiB), 0, 1.5 * MiB, 5 * MiB + 12345);
    closeSync(fd);
    for (const i of [7, 70, 170]) writeFileSync(join(src, 'small', `f-${i}`), randomBytes(5000));
    writeFileSync(join(src, 'small', 'new'), randomBytes(64 * 1024));

    const before = repo.target.bytesWritten;
    const second = await runBackup(repo, src, { volume: 'incr' });
    const written = repo.target.bytesWritten - before;
    assert.equal(second.parent, first.id);
    t.diagnostic(`second backup wrote ${written} bytes = ${((100 * written) / total).toFixed(2)}% of ${total}`);
    assert.ok(written < total * 0.05, `second backup wrote ${written} bytes = ${((100 * written) / total).toFixed(2)}% of ${total}`);
    assert.ok(written >= MiB, 'it did write the change');
    const out = join(tmp, 'incr-restored');
    await runRestore(repo, second.id, out);
    assertSameTree(src, out);
    rmSync(out, { recursive: true });
  });

  it('a backup killed with SIGKILL leaves a repository that verifies; the next backup reuses the packs already written', async (t) => {
    const src = join(tmp, 'kill');
    mkdirSync(src);
    for (let i = 0; i < 12; i++) writeFileSync(join(src, `f-${i}.bin`), randomBytes(16 * MiB));
    const child = spawn(process.execPath, [join(here, '../helpers/backup-child.js'), 'backup', url, 'correct horse', src, 'kill'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killedAt = await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = [...buf.matchAll(/uploaded (\d+)/g)].at(-1);
        if (m && Number(m[1]) >= 64 * MiB && !child.killed) {
          child.kill('SIGKILL');
          resolve(Number(m[1]));
        }
        if (buf.includes('"id"')) reject(new Error('the backup finished before it could be killed'));
      });
      child.on('exit', (c, sig) => {
        if (sig !== 'SIGKILL') reject(new Error(`child exited ${c}: ${stderr}`));
      });
    });
    await new Promise((r) => child.on('close', r));
    assert.ok(killedAt < 150 * MiB);

    const again = await open(url, { password: 'correct horse' });
    try {
      assert.equal((await again.list({ volume: 'kill' })).length, 0, 'no backup became visible');
      const v = await runVerify(again);
      assert.deepEqual(v.problems, []);
      const before = again.target.bytesWritten;
      const info = await runBackup(again, src, { volume: 'kill' });
      const written = again.target.bytesWritten - before;
      t.diagnostic(`killed after ${killedAt} bytes of packs; the next run wrote ${written} of ${192 * MiB}`);
      assert.ok(written < 192 * MiB - killedAt + 16 * MiB, `the second run wrote ${written} bytes; ${killedAt} were already there`);
      assert.ok(info.bytesNew < 192 * MiB - killedAt + 16 * MiB);
      const full = await runVerify(again, { readData: true });
      assert.deepEqual(full.problems, []);
      const out = join(tmp, 'kill-restored');
      await runRestore(again, info.id, out);
      assertSameTree(src, out);
      rmSync(out, { recursive: true });
    } finally {
      again.close();
    }
  });

  it('verify names a damaged pack and the backups depending on it; a deleted pack too', async () => {
    const r = await init(pathToFileURL(join(tmp, 'repo-damage')).href, { password: 'pw', kdf: cheap });
    try {
      const src = join(tmp, 'damage');
      mkdirSync(join(src, 'a'), { recursive: true });
      mkdirSync(join(src, 'b'), { recursive: true });
      for (let i = 0; i < 3; i++) writeFileSync(join(src, 'a', `f${i}`), randomBytes(7 * MiB));
      const first = await runBackup(r, src, { volume: 'v' });
      for (let i = 0; i < 3; i++) writeFileSync(join(src, 'b', `f${i}`), randomBytes(7 * MiB));
      const second = await runBackup(r, src, { volume: 'v' });
      assert.ok((await runVerify(r, { readData: true })).ok);

      // the first backup's data pack is used by both backups
      const all = packs(join(tmp, 'repo-damage'));
      const big = all.map((p) => ({ p, size: statSync(p).size })).sort((x, y) => y.size - x.size);
      const victim = big[big.length > 2 ? 1 : 0]!.p;
      const name = victim.split('/').at(-1)!;
      const buf = readFileSync(victim);
      buf[Math.floor(buf.length / 3)]! ^= 0x40;
      writeFileSync(victim, buf);
      const structural = await runVerify(r);
      assert.ok(structural.ok, 'structure alone does not read data');
      const full = await runVerify(r, { readData: true });
      assert.equal(full.ok, false);
      const p = full.problems.find((x) => x.pack === name);
      assert.ok(p, JSON.stringify(full.problems));
      assert.equal(p.kind, 'corrupt-pack');
      assert.ok(p.backups.length >= 1);
      for (const b of p.backups) assert.ok([first.id, second.id].includes(b));
      assert.match(p.message, new RegExp(name));
      // restoring a backup that needs the damaged chunk fails clearly
      const victimUser = p.backups[0]!;
      await assert.rejects(runRestore(r, victimUser, join(tmp, 'damage-out')), code('corrupt'));
      rmSync(join(tmp, 'damage-out'), { recursive: true, force: true });

      // the restore's writer threads read the packs of a file target themselves: a pack cut short, then
      // one deleted, once the restore has checked the index (as a disk or a share failing under it would),
      // fail the restore with the same coded errors naming the pack, and leave no pack open
      const packDir = join(tmp, 'repo-damage', 'data');
      // (the main thread keeps a few packs open for its own reads, e.g. of trees, whether or not they are deleted since)
      const openPacks = () => readdirSync('/proc/self/fd').map((f) => { try { return readlinkSync(`/proc/self/fd/${f}`).replace(/ \(deleted\)$/, ''); } catch { return ''; } }).filter((l) => l.startsWith(packDir)).sort().join('\n');
      const packsOpen = openPacks();
      buf[Math.floor(buf.length / 3)]! ^= 0x40;
      const whenStarted = (damage: () => void) => {
        let done = false;
        return { onProgress: () => void (done ? undefined : ((done = true), damage())) };
      };
      const cut = whenStarted(() => writeFileSync(victim, buf.subarray(0, Math.floor(buf.length / 2))));
      await assert.rejects(runRestore(r, victimUser, join(tmp, 'damage-out'), cut), (e: unknown) => code('corrupt')(e) && new RegExp(`in pack ${name} is truncated`).test((e as Error).message));
      rmSync(join(tmp, 'damage-out'), { recursive: true, force: true });
      writeFileSync(victim, buf);
      await assert.rejects(runRestore(r, victimUser, join(tmp, 'damage-out'), whenStarted(() => rmSync(victim))), (e: unknown) => code('not_found')(e) && new RegExp(`${name} does not exist`).test((e as Error).message));
      rmSync(join(tmp, 'damage-out'), { recursive: true, force: true });
      assert.equal(openPacks(), packsOpen, 'no pack is left open by a failed restore');

      const s = await runVerify(r);
      const m = s.problems.find((x) => x.pack === name);
      assert.ok(m, JSON.stringify(s.problems));
      assert.equal(m.kind, 'missing-pack');
      assert.deepEqual(m.backups, p.backups);
    } finally {
      r.close();
    }
  });

  it('two hosts backing up into one repository at the same time both succeed', async () => {
    const dir = join(tmp, 'repo-shared');
    const r0 = await init(pathToFileURL(dir).href, { password: 'pw', kdf: cheap });
    r0.close();
    const [h1, h2] = await Promise.all([open(pathToFileURL(dir).href, { password: 'pw' }), open(pathToFileURL(dir).href, { password: 'pw' })]);
    try {
      const a = join(tmp, 'shared-a');
      const b = join(tmp, 'shared-b');
      mkdirSync(a);
      mkdirSync(b);
      const common = randomBytes(20 * MiB); // the same data on both hosts: stored twice at worst, never lost
      writeFileSync(join(a, 'common'), common);
      writeFileSync(join(b, 'common'), common);
      writeFileSync(join(a, 'own'), randomBytes(10 * MiB));
      writeFileSync(join(b, 'own'), randomBytes(10 * MiB));
      const [ia, ib] = await Promise.all([runBackup(h1, a, { volume: 'v', node: 'host-a' }), runBackup(h2, b, { volume: 'v', node: 'host-b' })]);
      assert.notEqual(ia.id, ib.id);
      const r = await open(pathToFileURL(dir).href, { password: 'pw' });
      assert.equal((await r.list()).length, 2);
      assert.deepEqual((await runVerify(r, { readData: true })).problems, []);
      for (const [info, src] of [[ia, a], [ib, b]] as const) {
        const out = join(tmp, `shared-out-${info.id}`);
        await runRestore(r, info.id, out);
        assertSameTree(src, out);
        rmSync(out, { recursive: true });
      }
      // prune (exclusive) keeps everything both need
      await runPrune(r);
      assert.deepEqual((await runVerify(r, { readData: true })).problems, []);
      r.close();
    } finally {
      h1.close();
      h2.close();
    }
  });

  it('prune after remove shrinks the repository; the other backups still restore', async () => {
    const dir = join(tmp, 'repo-prune');
    const r = await init(pathToFileURL(dir).href, { password: 'pw', kdf: cheap });
    try {
      const a = join(tmp, 'prune-a');
      const b = join(tmp, 'prune-b');
      mkdirSync(a);
      mkdirSync(b);
      writeFileSync(join(a, 'x'), randomBytes(40 * MiB));
      writeFileSync(join(b, 'y'), randomBytes(30 * MiB));
      const ia = await runBackup(r, a, { volume: 'a' });
      const ib = await runBackup(r, b, { volume: 'b' });
      const size0 = du(dir);
      await r.remove(ia.id.slice(0, 10));
      await assert.rejects(r.inspect(ia.id), code('not_found'));
      assert.ok(du(dir) > size0 - MiB, 'remove alone frees nothing');
      const res = await runPrune(r);
      const size1 = du(dir);
      assert.ok(size1 < size0 - 38 * MiB, `prune freed ${size0 - size1} bytes`);
      assert.ok(res.packsRemoved >= 2);
      assert.ok((await runVerify(r, { readData: true })).ok);
      const out = join(tmp, 'prune-out');
      await runRestore(r, ib.id, out);
      assertSameTree(b, out);
      // a second prune finds nothing to do
      assert.equal((await runPrune(r)).packsRemoved, 0);
    } finally {
      r.close();
    }
  });

  it('clear errors: wrong password, missing target, not a repository, locked, unencrypted only when asked', async () => {
    await assert.rejects(open(url, { password: 'wrong' }), (e: unknown) => code('bad_password')(e) && /wrong password/.test((e as Error).message));
    await assert.rejects(open(url), code('bad_password'));
    await assert.rejects(open(pathToFileURL(join(tmp, 'nowhere')).href, { password: 'x' }), (e: unknown) => code('not_found')(e) && /does not exist/.test((e as Error).message));
    mkdirSync(join(tmp, 'empty-dir'));
    await assert.rejects(open(pathToFileURL(join(tmp, 'empty-dir')).href, { password: 'x' }), (e: unknown) => code('not_found')(e) && /not a Ferry backup repository.*init/.test((e as Error).message));
    await assert.rejects(init(url, { password: 'x', kdf: cheap }), code('exists'));
    await assert.rejects(init(pathToFileURL(join(tmp, 'nopw')).href, {}), code('invalid'));
    const keyFile = join(tmp, 'key');
    writeFileSync(keyFile, randomBytes(64));
    const kr = await init(pathToFileURL(join(tmp, 'keyfile-repo')).href, { keyFile, kdf: cheap });
    kr.close();
    (await open(pathToFileURL(join(tmp, 'keyfile-repo')).href, { keyFile })).close();
    await assert.rejects(open(pathToFileURL(join(tmp, 'keyfile-repo')).href, { password: 'guess' }), code('bad_password'));
    // unencrypted, explicitly
    const plainUrl = pathToFileURL(join(tmp, 'plain')).href;
    const pr = await init(plainUrl, { encryption: 'none' });
    const src = join(tmp, 'plain-src');
    mkdirSync(src);
    writeFileSync(join(src, 'hello'), 'hello plain world');
    const info = await runBackup(pr, src, { volume: 'p' });
    const pr2 = await open(plainUrl);
    await runRestore(pr2, info.id, join(tmp, 'plain-out'));
    assert.equal(readFileSync(join(tmp, 'plain-out', 'hello'), 'utf8'), 'hello plain world');
    // prune waits for nobody: a live backup lock makes it fail with in_use
    const release = await takeLock(pr, false, 'test');
    await assert.rejects(runPrune(pr2), code('in_use'));
    await release();
    await runPrune(pr2);
    // a lock that cannot be refreshed is not trusted once others may take it as stale
    const held = await takeLock(pr, false, 'backup of p', { refreshMs: 40, staleMs: 1000 });
    held.check();
    const put = pr.target.put.bind(pr.target);
    pr.target.put = async () => {
      throw new FerryError('unavailable', 'target went away');
    };
    try {
      await new Promise((r) => setTimeout(r, 150));
      held.check(); // failing for 150 ms: well within staleMs - refreshMs
      await new Promise((r) => setTimeout(r, 1000));
      assert.throws(() => held.check(), (e: unknown) => code('unavailable')(e) && /lost the lock on .*could not be refreshed since .* \(target went away\).*nothing was recorded: run it again/.test((e as Error).message));
    } finally {
      pr.target.put = put;
    }
    // refreshed again, a few refresh periods later (waited for, not slept: a loaded machine runs timers late)
    for (const deadline = Date.now() + 5000; ; await new Promise((r) => setTimeout(r, 20))) {
      try {
        held.check();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
    await held();
    pr.close();
    pr2.close();
    // restore refuses a non-empty directory
    await assert.rejects(runRestore(repo, (await repo.list())[0]!.id, src), code('exists'));
  });

  it('a restore syncs its filesystem as it goes: the data is on the disk when it returns, not only in the page cache', { skip: loopFsPrerequisites('ext4').length ? 'needs root and mkfs.ext4' : false }, async () => {
    const src = join(tmp, 'writeback');
    mkdirSync(src);
    populate(src, 40);
    for (let i = 0; i < 6; i++) writeFileSync(join(src, `big-${i}`), randomBytes(4 * MiB));
    const info = await runBackup(repo, src, { volume: 'writeback' });
    // the restores go to a filesystem of their own, whose device's written sectors tell what reached the disk
    const fs = await makeLoopFs('ext4', 128, ['-E', 'lazy_itable_init=0,lazy_journal_init=0']);
    try {
      const dev = execFileSync('findmnt', ['-no', 'SOURCE', fs.mountpoint], { encoding: 'utf8' }).trim().replace('/dev/', '');
      const written = () => Number(readFileSync(`/sys/block/${dev}/stat`, 'utf8').trim().split(/\s+/)[6]) * 512;
      execFileSync('sync', ['-f', fs.mountpoint]);
      // without writeback, next to nothing reaches the disk before the caller syncs (which shows the figure below is the restore's doing)
      let before = written();
      const quiet = await runRestore(repo, info.id, join(fs.mountpoint, 'quiet'), { writebackStep: 0 });
      const quietBytes = written() - before;
      assert.ok(quietBytes < 4 * MiB, `without writeback ${quietBytes} bytes reached the disk during a restore of ${quiet.bytes}`);
      assertSameTree(src, join(fs.mountpoint, 'quiet'));
      execFileSync('sync', ['-f', fs.mountpoint]);

      before = written();
      const res = await runRestore(repo, info.id, join(fs.mountpoint, 'synced'), { writebackStep: 2 * MiB });
      const syncedBytes = written() - before;
      assert.ok(syncedBytes >= 12 * MiB, `with writeback every 2 MiB (24 MiB of random data) only ${syncedBytes} bytes of ${res.bytes} reached the disk before the restore returned`);
      assertSameTree(src, join(fs.mountpoint, 'synced'));
      assert.equal(spawnSync('pgrep', ['-f', `sync -f ${fs.mountpoint}`]).status, 1, 'no sync of the restore is left running');
    } finally {
      await fs.destroy();
    }
  });

  it('a full target fails with no_space', { skip: loopFsPrerequisites('ext4').length ? 'needs root and mkfs.ext4' : false }, async () => {
    const fs = await makeLoopFs('ext4', 32);
    try {
      const r = await init(pathToFileURL(join(fs.mountpoint, 'repo')).href, { password: 'pw', kdf: cheap });
      const src = join(tmp, 'too-big');
      mkdirSync(src);
      writeFileSync(join(src, 'x'), randomBytes(48 * MiB));
      await assert.rejects(runBackup(r, src, { volume: 'big' }), (e: unknown) => code('no_space')(e) && /is full/.test((e as Error).message));
      r.close();
    } finally {
      await fs.destroy();
    }
  });
});
