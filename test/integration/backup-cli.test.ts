/**
 * Backups through ferryd, the API and the CLI: a file target and an S3 target (s3rver on 127.0.0.1), two
 * ferryd "hosts" sharing the targets, restore on the second one with `-o backup=URL` (what
 * `docker volume create -d ferry --opt backup=URL` sends), incremental uploads, verify, wrong password,
 * missing target.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, readdir, readFile, stat, open as openFile, appendFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { populate, fingerprint } from '../helpers/tree.js';

describe('backups through ferryd and the CLI', () => {
  let base: string;
  let s3: TestS3;
  let a: Ferryd;
  let b: Ferryd;
  const repo = () => join(base, 'repo');
  const config = (secret: string) =>
    [
      'backupTargets:',
      '  nas:',
      `    url: file://${repo()}`,
      `    passwordFile: ${secret}`,
      '  objects:',
      '    url: s3://ferry-backups/cluster',
      `    passwordFile: ${secret}`,
      '    s3:',
      `      endpoint: ${s3.endpoint}`,
      '      region: us-east-1',
      '      pathStyle: true',
      '      accessKeyId: S3RVER',
      '      secretAccessKey: S3RVER',
    ].join('\n');
  const node = async (name: string, secret: string) => {
    const dir = join(base, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'ferry.yaml'), config(secret));
    return startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', name] });
  };
  const ok = async (f: Ferryd, ...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const data = (f: Ferryd, v: string) => join(f.dataDir, 'volumes', v, 'data');

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-backup-cli-'));
    s3 = await startS3(['ferry-backups']);
    await writeFile(join(base, 'key'), 'correct horse battery staple\n', { mode: 0o600 });
    await mkdir(repo()); // the NFS export, say: mounted, still empty
    a = await node('hostA', join(base, 'key'));
    b = await node('hostB', join(base, 'key'));
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    await s3?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('says how to start when the target is not a repository yet, then initialises it', async () => {
    const r = await a.cli('backup', 'create', 'nothing-yet', '--target', 'nas');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no such volume: nothing-yet/);
    const ls = await a.cli('backup', 'ls', '--target', 'nas');
    assert.equal(ls.code, 1);
    assert.match(ls.stderr, /ferry backup init/);
    assert.match(await ok(a, 'backup', 'init', '--target', 'nas'), /initialised an encrypted repository at file:\/\//);
    assert.match(await ok(a, 'backup', 'init', '--target', 'objects'), /at s3:\/\/ferry-backups\/cluster/);
  });

  for (const t of ['nas', 'objects']) {
    it(`round trip through the ${t === 'nas' ? 'file' : 'S3'} target: restored on another node, byte-identical with all metadata`, async () => {
      const vol = `app-${t}`;
      await ok(a, 'volume', 'create', vol);
      populate(data(a, vol), 300);
      const before = fingerprint(data(a, vol));
      const url = (await ok(a, 'backup', 'create', vol, '--target', t)).trim();
      assert.match(url, new RegExp(`^(file|s3)://.*\\?backup=[0-9a-f]+&volume=${vol}$`));
      // a URL whose volume= names another volume than its backup's is a mix-up: refused, nothing made
      const mixed = await b.plugin('Create', { Name: `${vol}-mixed`, Opts: { backup: url.replace(/volume=.*$/, 'volume=other') } });
      assert.match(mixed.json.Err, new RegExp(`is a backup of volume .${vol}., not of .other.: check the URL`));
      assert.equal((await b.plugin('Get', { Name: `${vol}-mixed` })).json.Err, `no such volume: ${vol}-mixed`);
      // the other node restores it, as Docker would with `docker volume create -d ferry --opt backup=URL`
      const created = await b.plugin('Create', { Name: `${vol}-copy`, Opts: { backup: url } });
      assert.equal(created.json.Err, '', created.text);
      const after = fingerprint(data(b, `${vol}-copy`));
      // times come back to the microsecond (what Node's utimes can set; docs/backup-format.md)
      const us = (fp: ReturnType<typeof fingerprint>) =>
        Object.fromEntries(Object.entries(fp).map(([k, v]) => [k, { ...v, mtime: String((v as { mtime?: string }).mtime ?? '').slice(0, -3) }]));
      assert.deepEqual(us(after), us(before));
      assert.ok(after['sparse.img']!.allocatedMiB! <= 2, 'the sparse file stays sparse');
      const inspect = JSON.parse(await ok(b, '--json', 'backup', 'inspect', url));
      assert.equal(inspect.volume, vol);
      assert.equal(inspect.node, 'hostA');
      const text = await ok(b, 'backup', 'inspect', url);
      assert.match(text, /^Made by: {2}a user \(a schedule never removes it\)$/m);
      // (written straight into the volume's data, nothing mounted: its snapshot is one instant)
      assert.match(text, /^Data: {5}one instant \(crash-consistent: as after a power cut\)$/m);
    });
  }

  it('second backup after a 1% change writes about 1% to the target', async () => {
    await ok(a, 'volume', 'create', 'big');
    const d = data(a, 'big');
    // 40 files of 1 MiB of random data
    for (let i = 0; i < 40; i++) {
      const fh = await openFile(join(d, `f${i}`), 'w');
      await fh.write(Buffer.from(Array.from({ length: 1 << 20 }, () => (Math.random() * 256) | 0)));
      await fh.close();
    }
    const first = JSON.parse(await ok(a, '--json', 'backup', 'create', 'big', '--target', 'nas'));
    assert.ok(first.bytesAdded > 35 * (1 << 20), `first backup wrote ${first.bytesAdded}`);
    // change 1% (400 KiB appended to one file)
    await appendFile(join(d, 'f7'), Buffer.alloc(400 * 1024, 7));
    const second = JSON.parse(await ok(a, '--json', 'backup', 'create', 'big', '--target', 'nas'));
    assert.equal(second.parent, first.id);
    assert.ok(second.bytesAdded < 0.05 * first.bytesAdded, `second backup wrote ${second.bytesAdded} bytes of ${first.bytesAdded}`);
    const ls = await ok(a, 'backup', 'ls', '--target', 'nas', '--volume', 'big');
    assert.equal(ls.trim().split('\n').length, 3, ls);
    // only the newest backup snapshot is kept, so the next snapshot is incremental
    const snaps = JSON.parse(await ok(a, '--json', 'snapshot', 'ls', 'big'));
    assert.equal(snaps.length, 1);
  });

  it('backs up a write that kept the file\'s size and mtime (its mtime set back), as restic does: ctime tells', async () => {
    const d = data(a, 'big');
    const file = join(d, 'f3');
    const ref = join(tmpdir(), `ferry-f3-times-${process.pid}`);
    execFileSync('touch', ['-r', file, ref]);
    const before = await stat(file, { bigint: true });
    const fh = await openFile(file, 'r+');
    await fh.write(Buffer.alloc(4096, 0xab), 0, 4096, 40960);
    await fh.close();
    execFileSync('touch', ['-r', ref, file]);
    await rm(ref);
    const after = await stat(file, { bigint: true });
    assert.equal(after.mtimeNs, before.mtimeNs, 'the mtime is the one before the write, to the nanosecond');
    assert.equal(after.size, before.size);
    const third = JSON.parse(await ok(a, '--json', 'backup', 'create', 'big', '--target', 'nas'));
    await ok(a, 'backup', 'restore', third.url, 'big-back');
    assert.ok((await readFile(join(data(a, 'big-back'), 'f3'))).equals(await readFile(file)), 'the restored file has the write');
    await ok(a, 'volume', 'rm', '--purge', 'big-back');
  });

  it('backup rm removes only the backup its URL names, by a prefix of its id too, and says which by its full URL', async () => {
    const list = async () => JSON.parse(await ok(a, '--json', 'backup', 'ls', '--target', 'nas', '--volume', 'big')) as Array<{ id: string; url: string; volume: string }>;
    const before = await list();
    const victim = before.at(-1)!;
    const short = (volume: string) => victim.url.replace(/\?.*$/, `?backup=${victim.id.slice(0, 6)}&volume=${volume}`);
    // a URL whose volume is not the backup's: refused, nothing removed
    const wrong = await a.cli('backup', 'rm', short('other'));
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, new RegExp(`backup ${victim.id} of .* is a backup of volume "?big"?, not of "?other"?: check the URL`));
    assert.deepEqual((await list()).map((b) => b.id), before.map((b) => b.id));
    const tooShort = await a.cli('backup', 'rm', victim.url.replace(/\?.*$/, `?backup=${victim.id.slice(0, 2)}&volume=big`));
    assert.match(tooShort.stderr, /backup id "?[0-9a-f]{2}"? is too short: give at least 4 characters of it/);
    assert.equal(await ok(a, 'backup', 'rm', short('big')), `removed ${victim.url}\n`);
    assert.deepEqual((await list()).map((b) => b.id), before.slice(0, -1).map((b) => b.id));
  });

  it('runs two backups of one volume started together one after the other: the second is incremental, and one base stays', async () => {
    // enough new data (24 MiB) that the first is still reading it when the second's snapshot is made
    for (let i = 10; i < 34; i++) await writeFile(join(data(a, 'big'), `f${i}`), randomBytes(1 << 20));
    const ids = await Promise.all([1, 2].map(async () => (await ok(a, 'backup', 'create', 'big', '--target', 'nas', '--no-wait')).trim()));
    type Done = { state: string; finishedAt: string; result: { id: string; parent?: string; snapshot: string; bytesNew: number } };
    const jobs = await Promise.all(ids.map(async (id) => JSON.parse(await ok(a, '--json', 'job', 'wait', id)) as Done));
    assert.deepEqual(jobs.map((j) => j.state), ['succeeded', 'succeeded']);
    const [first, second] = jobs.sort((x, y) => Date.parse(x.finishedAt) - Date.parse(y.finishedAt)) as [Done, Done];
    assert.equal(second.result.parent, first.result.id, 'the second starts from the first');
    assert.ok(second.result.bytesNew < 64 * 1024, `the second read nothing new (${second.result.bytesNew} bytes new)`);
    const bases = (JSON.parse(await ok(a, '--json', 'snapshot', 'ls', 'big', '--all')) as Array<{ id: string; origin: string }>).filter((x) => x.origin === 'backup');
    assert.deepEqual(bases.map((b) => b.id), [second.result.snapshot], 'the base of the next backup stays, alone');
  });

  it('verify --read-data names a damaged pack and the backups that depend on it', async () => {
    assert.match(await ok(a, 'backup', 'verify', '--target', 'nas', '--read-data'), /^no problems: \d+ backups/);
    // flip a byte in the middle of the largest pack
    const packs: Array<[string, number]> = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else packs.push([p, (await stat(p)).size]);
      }
    };
    await walk(join(repo(), 'data'));
    const [victim, size] = packs.sort((x, y) => y[1] - x[1])[0]!;
    const fh = await openFile(victim, 'r+');
    const buf = Buffer.alloc(1);
    await fh.read(buf, 0, 1, Math.floor(size / 2));
    buf[0] = buf[0]! ^ 0xff;
    await fh.write(buf, 0, 1, Math.floor(size / 2));
    await fh.close();
    assert.match(await ok(a, 'backup', 'verify', '--target', 'nas'), /^no problems/, 'structure only does not read data');
    const r = await a.cli('backup', 'verify', '--target', 'nas', '--read-data');
    assert.equal(r.code, 1);
    const packId = victim.split('/').pop()!;
    assert.match(r.stderr, new RegExp(packId.slice(0, 12)));
    const damaged = r.stderr.split('\n').find((l) => l.includes(packId.slice(0, 12)))!;
    const ids = damaged.match(/backups depending on it: ([0-9a-f, ]+)/)?.[1]?.split(', ') ?? [];
    assert.ok(ids.length > 0, damaged);
    for (const id of ids) assert.equal(damaged.split(id).length - 1, 1, `backup ${id} named once: ${damaged}`);
    // the job's progress went through every pack (it stayed at 0 bytes, 0 files before)
    const jobs = JSON.parse(await ok(a, '--json', 'job', 'ls')) as Array<{ kind: string; progress: { bytesDone: number; bytesTotal?: number; filesDone: number; filesTotal?: number } }>;
    const v = jobs.find((j) => j.kind === 'verify')!; // newest first
    assert.ok(v.progress.bytesTotal! > 0 && v.progress.bytesDone === v.progress.bytesTotal, JSON.stringify(v.progress));
    assert.ok(v.progress.filesTotal! > 0 && v.progress.filesDone === v.progress.filesTotal, JSON.stringify(v.progress));
  });

  it('a wrong password and a missing target are clear errors with exit code 1', async () => {
    await writeFile(join(base, 'wrong-key'), 'not the password\n');
    const c = await node('hostC', join(base, 'wrong-key'));
    try {
      const r = await c.cli('backup', 'ls', '--target', 'objects');
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`wrong password or key file for target objects \\(s3://ferry-backups/cluster\\): the key file ${join(base, 'wrong-key')} does not open it; check it`));
      const restore = await c.plugin('Create', { Name: 'never', Opts: { backup: `file://${repo()}?backup=abcdef12&volume=x` } });
      assert.match(restore.json.Err, /wrong password/);
      assert.equal((await c.plugin('Get', { Name: 'never' })).json.Err, 'no such volume: never', 'nothing half-made');
    } finally {
      await c.destroy();
    }
    const missing = await a.cli('backup', 'ls', '--target', `file://${join(base, 'no-such-dir')}`);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no-such-dir/);
    // a scheduled backup to a mistyped target is refused when the volume is made, not at its first run
    const typo = await a.cli('volume', 'create', 'typo', '-o', 'backup-schedule=@daily', '-o', 'backup-target=nsa');
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /option backup-target: no backup target named "nsa"; configured: nas, objects/);
    assert.match((await a.cli('volume', 'inspect', 'typo')).stderr, /no such volume: typo/);
    const unknown = await a.cli('backup', 'ls', '--target', 'tape');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no backup target named "tape"; configured: nas, objects/);
  });
});
