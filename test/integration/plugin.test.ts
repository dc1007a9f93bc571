import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';

const mountsOf = async (f: Ferryd, name: string): Promise<number> => {
  const r = await f.plugin('Get', { Name: name });
  assert.equal(r.json.Err, '', r.text);
  return r.json.Volume.Status.mounts as number;
};

describe('plugin protocol against a real ferryd', () => {
  let f: Ferryd;
  before(async () => {
    f = await startFerryd();
  });
  after(async () => {
    await f?.destroy();
  });

  it('answers Activate and Capabilities with Docker\'s content type', async () => {
    const a = await unixRequest(f.pluginSocket, 'POST', '/Plugin.Activate', '', { accept: 'application/vnd.docker.plugins.v1.2+json' });
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { Implements: ['VolumeDriver'] });
    assert.match(String(a.headers['content-type']), /^application\/vnd\.docker\.plugins\.v1\.1\+json/);
    const c = await f.plugin('Capabilities');
    assert.deepEqual(c.json, { Capabilities: { Scope: 'local' } });
    // nothing on stderr but ferryd's own log lines: no warning of a library's (Node or Fastify) for the user to puzzle over
    assert.deepEqual((await f.logs()).split('\n').filter((l) => l !== '' && !l.startsWith('{"level":')), []);
  });

  it('creates, gets, lists, mounts, paths, unmounts and removes a volume', async () => {
    assert.deepEqual((await f.plugin('Create', { Name: 'life', Opts: { mode: '0750' } })).json, { Err: '' });
    const g = await f.plugin('Get', { Name: 'life' });
    assert.equal(g.status, 200);
    assert.equal(g.json.Err, '');
    assert.equal(g.json.Volume.Name, 'life');
    assert.equal(g.json.Volume.Mountpoint, join(f.dataDir, 'volumes', 'life', 'data'));
    assert.ok(!Number.isNaN(Date.parse(g.json.Volume.CreatedAt)));
    assert.equal(statSync(g.json.Volume.Mountpoint).mode & 0o7777, 0o750);
    const l = await f.plugin('List');
    assert.ok(l.json.Volumes.some((v: { Name: string; Mountpoint: string }) => v.Name === 'life' && v.Mountpoint === g.json.Volume.Mountpoint));
    const m = await f.plugin('Mount', { Name: 'life', ID: 'c1' });
    assert.deepEqual(m.json, { Mountpoint: g.json.Volume.Mountpoint, Err: '' });
    assert.equal((await f.plugin('Path', { Name: 'life' })).json.Mountpoint, g.json.Volume.Mountpoint);
    const busy = await f.plugin('Remove', { Name: 'life' });
    assert.match(busy.json.Err, /in use/);
    assert.deepEqual((await f.plugin('Unmount', { Name: 'life', ID: 'c1' })).json, { Err: '' });
    assert.deepEqual((await f.plugin('Remove', { Name: 'life' })).json, { Err: '' });
    const gone = await f.plugin('Get', { Name: 'life' });
    assert.match(gone.json.Err, /no such volume: life/);
    assert.ok(!(await f.plugin('List')).json.Volumes.some((v: { Name: string }) => v.Name === 'life'));
  });

  it('is idempotent for Create of the same volume, refuses other options', async () => {
    assert.equal((await f.plugin('Create', { Name: 'twice', Opts: { uid: '1000' } })).json.Err, '');
    assert.equal((await f.plugin('Create', { Name: 'twice', Opts: { uid: '1000' } })).json.Err, '');
    assert.match((await f.plugin('Create', { Name: 'twice', Opts: { uid: '0' } })).json.Err, /already exists with other options/);
  });

  it('refuses unknown or malformed options, listing the accepted ones', async () => {
    const r = await f.plugin('Create', { Name: 'opts', Opts: { quota: '10G' } });
    assert.equal(r.status, 400);
    assert.match(r.json.Err, /unknown volume option "quota"; accepted options: access, backup, backup-keep, backup-keep-base, backup-schedule, backup-target, from, fs, gid, mode, pool, size, snapshot-keep, snapshot-schedule, uid/);
    assert.match((await f.plugin('Create', { Name: 'opts', Opts: { mode: 'rwx' } })).json.Err, /octal/);
    assert.match((await f.plugin('Create', { Name: 'opts', Opts: { pool: 'nas' } })).json.Err, /no pool named "nas"/);
    assert.match((await f.plugin('Get', { Name: 'opts' })).json.Err, /no such volume/);
  });

  it('refuses bad names on every call and never leaves the data dir', async () => {
    const before = readdirSync(join(f.dataDir, '..'));
    for (const name of ['../../etc', 'a/b', '', 'a', '.hidden', '..', 'x'.repeat(129), 'sp ace', 'nul\u0000']) {
      for (const call of ['Create', 'Get', 'Mount', 'Unmount', 'Path', 'Remove']) {
        const r = await f.plugin(call, { Name: name, ID: 'x1' });
        assert.equal(r.status, 400, `${call} ${JSON.stringify(name)}: ${r.text}`);
        assert.match(r.json.Err, /volume name/, `${call} ${JSON.stringify(name)}`);
      }
    }
    const numeric = await f.plugin('Create', { Name: 42 });
    assert.match(numeric.json.Err, /Name must be a string/);
    assert.deepEqual(readdirSync(join(f.dataDir, '..')), before);
    assert.ok(!existsSync(join(f.dataDir, 'etc')));
    assert.ok(!readdirSync(join(f.dataDir, 'volumes')).some((n) => n.includes('etc') || n === 'a'));
  });

  it('answers protocol errors with a status and an Err', async () => {
    const bad = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.Get', '{"Name": "x"');
    assert.equal(bad.status, 400);
    assert.match(bad.json.Err, /malformed JSON/);
    const arr = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.Get', '[1,2]');
    assert.equal(arr.status, 400);
    assert.match(arr.json.Err, /must be a JSON object/);
    const get = await unixRequest(f.pluginSocket, 'GET', '/VolumeDriver.List');
    assert.equal(get.status, 405);
    assert.match(get.json.Err, /takes POST/);
    const unknown = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.Snapshot', '{}');
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.Err, /unknown endpoint/);
    // A 2 MiB body announced in the headers: refused without reading it (raw socket, so the client
    // does not race the server's answer with its own writes).
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = connect(f.pluginSocket, () => {
        sock.write(`POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n{"Name":"huge","Opts":{"mode":"`);
      });
      let text = '';
      sock.on('data', (c) => {
        text += c.toString();
        if (text.includes('\r\n\r\n') && text.includes('}')) sock.destroy();
      });
      sock.on('close', () => resolve(text));
      sock.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 413 /);
    assert.match(raw, /"Err":"request body too large: the limit is 1048576 bytes"/);
    assert.match((await f.plugin('Get', { Name: 'huge' })).json.Err, /no such volume/);
    const empty = await unixRequest(f.pluginSocket, 'POST', '/VolumeDriver.List', '');
    assert.equal(empty.status, 200);
    const missing = await f.plugin('Mount', { Name: 'nosuch', ID: 'm1' });
    assert.match(missing.json.Err, /no such volume: nosuch/);
    const noId = await f.plugin('Mount', { Name: 'twice' });
    assert.match(noId.json.Err, /mount ID/);
    // the daemon is still healthy after all that
    assert.equal((await f.plugin('Capabilities')).status, 200);
  });

  it('tolerates Unmount after a failed Mount, unknown IDs and duplicate IDs', async () => {
    await f.plugin('Create', { Name: 'refs' });
    assert.match((await f.plugin('Mount', { Name: 'refs-missing', ID: 'f1' })).json.Err, /no such volume/);
    assert.equal((await f.plugin('Unmount', { Name: 'refs-missing', ID: 'f1' })).json.Err, '');
    assert.equal((await f.plugin('Unmount', { Name: 'refs', ID: 'never-mounted' })).json.Err, '');
    await f.plugin('Mount', { Name: 'refs', ID: 'd1' });
    await f.plugin('Mount', { Name: 'refs', ID: 'd1' });
    assert.equal(await mountsOf(f, 'refs'), 1);
    await f.plugin('Mount', { Name: 'refs', ID: 'd2' });
    assert.equal(await mountsOf(f, 'refs'), 2);
    await f.plugin('Unmount', { Name: 'refs', ID: 'd1' });
    await f.plugin('Unmount', { Name: 'refs', ID: 'd1' });
    assert.equal(await mountsOf(f, 'refs'), 1);
    await f.plugin('Unmount', { Name: 'refs', ID: 'd2' });
    assert.equal(await mountsOf(f, 'refs'), 0);
  });

  it('refuses to Mount a volume whose data directory is gone or is not a directory, and mounts it once it is back', async () => {
    assert.equal((await f.plugin('Create', { Name: 'lost' })).json.Err, '');
    const data = join(f.dataDir, 'volumes', 'lost', 'data');
    writeFileSync(join(data, 'kept.txt'), 'kept');
    renameSync(data, `${data}.away`);
    const gone = await f.plugin('Mount', { Name: 'lost', ID: 'l1' });
    assert.match(gone.json.Err, new RegExp(`^the data of volume lost is missing from pool local \\(${data}: ENOENT: no such file or directory, stat '${data}'\\); check the pool's filesystem$`));
    writeFileSync(data, 'a file where the directory was');
    const file = await f.plugin('Mount', { Name: 'lost', ID: 'l2' });
    assert.match(file.json.Err, /^the data of volume lost is missing from pool local \(.*: not a directory\)/);
    assert.equal(await mountsOf(f, 'lost'), 0, 'a refused Mount is not counted');
    unlinkSync(data);
    renameSync(`${data}.away`, data);
    const back = await f.plugin('Mount', { Name: 'lost', ID: 'l3' });
    assert.deepEqual(back.json, { Mountpoint: data, Err: '' });
    assert.equal(readFileSync(join(back.json.Mountpoint, 'kept.txt'), 'utf8'), 'kept');
    assert.equal((await f.plugin('Unmount', { Name: 'lost', ID: 'l3' })).json.Err, '');
    assert.equal((await f.plugin('Remove', { Name: 'lost' })).json.Err, '');
  });

  it('keeps exact counts under a storm of concurrent Mount/Unmount on one volume and many', async () => {
    const vols = ['storm0', 'storm1', 'storm2', 'storm3'];
    for (const v of vols) await f.plugin('Create', { Name: v });
    const ids = Array.from({ length: 300 }, (_, i) => `id-${i}`);
    // 1200 concurrent mounts: 300 per volume
    const mounts = await Promise.all(vols.flatMap((v) => ids.map((id) => f.plugin('Mount', { Name: v, ID: id }))));
    assert.ok(mounts.every((r) => r.json.Err === ''));
    for (const v of vols) assert.equal(await mountsOf(f, v), 300);
    // unmount the even IDs while mounting and unmounting fresh ones, all at once
    await Promise.all([
      ...vols.flatMap((v) => ids.filter((_, i) => i % 2 === 0).map((id) => f.plugin('Unmount', { Name: v, ID: id }))),
      ...vols.flatMap((v) => ids.slice(0, 100).map(async (id) => {
        await f.plugin('Mount', { Name: v, ID: `tmp-${id}` });
        await f.plugin('Unmount', { Name: v, ID: `tmp-${id}` });
      })),
    ]);
    for (const v of vols) assert.equal(await mountsOf(f, v), 150);
    await Promise.all(vols.flatMap((v) => ids.map((id) => f.plugin('Unmount', { Name: v, ID: id }))));
    for (const v of vols) assert.equal(await mountsOf(f, v), 0);
  });
});

describe('ferryd crash and restart', () => {
  let f: Ferryd;
  before(async () => {
    f = await startFerryd();
  });
  after(async () => {
    await f?.destroy();
  });

  it('keeps reference counts across kill -9, accepts the later Unmounts', async () => {
    await f.plugin('Create', { Name: 'crashy' });
    for (const id of ['a', 'b', 'c']) assert.equal((await f.plugin('Mount', { Name: 'crashy', ID: id })).json.Err, '');
    await f.crash();
    assert.ok(existsSync(f.pluginSocket), 'a crash leaves the stale socket behind');
    await f.start();
    assert.equal(await mountsOf(f, 'crashy'), 3);
    assert.match((await f.plugin('Remove', { Name: 'crashy' })).json.Err, /in use/);
    for (const id of ['a', 'b', 'c']) assert.equal((await f.plugin('Unmount', { Name: 'crashy', ID: id })).json.Err, '');
    assert.equal(await mountsOf(f, 'crashy'), 0);
    assert.equal((await f.plugin('Remove', { Name: 'crashy' })).json.Err, '');
  });

  it('loses no acknowledged Mount when killed in the middle of a storm', async () => {
    await f.plugin('Create', { Name: 'midstorm' });
    const acked: string[] = [];
    const calls = Array.from({ length: 400 }, (_, i) =>
      f.plugin('Mount', { Name: 'midstorm', ID: `s${i}` }).then(
        (r) => {
          if (r.json?.Err === '') acked.push(`s${i}`);
        },
        () => undefined,
      ),
    );
    await new Promise((r) => setTimeout(r, 15));
    await f.crash();
    await Promise.all(calls);
    await f.start();
    const inspect = await f.cli('volume', 'inspect', 'midstorm', '--json');
    const ids = new Set(JSON.parse(inspect.stdout).mountIds as string[]);
    for (const id of acked) assert.ok(ids.has(id), `acknowledged mount ${id} lost in the crash`);
    assert.ok(ids.size >= acked.length);
    // and the catalog on disk is whole: every record parses after the crash
    const r = await f.cli('volume', 'ls', '--json');
    assert.equal(r.code, 0, r.stderr);
  });

  it('shuts down cleanly on SIGTERM and removes its sockets', async () => {
    const code = await f.stop();
    assert.equal(code, 0);
    assert.ok(!existsSync(f.pluginSocket));
    assert.ok(!existsSync(f.apiSocket));
    await f.start();
  });

  it('refuses to start a second daemon on a socket in use, before it makes its data dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-second-'));
    try {
      const second = await startFerryd({ dir, pluginSocket: f.pluginSocket }).then(
        async (d) => {
          await d.destroy();
          return 'started';
        },
        (err: Error) => err.message,
      );
      assert.match(second, /already serving .*ferry\.sock.*is ferryd already running/s);
      assert.equal(existsSync(join(dir, 'data')), false, 'no data dir left behind');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal((await f.plugin('Capabilities')).status, 200);
  });
});
