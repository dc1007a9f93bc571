/**
 * The volume lists are kept between calls (GET /v1/volumes, and Docker's List at the plugin socket; issue 17,
 * 10,000 volumes) and made again when something in them changed: a real ferryd, each kind of change (Create,
 * Mount, Unmount, a usage figure, a snapshot, a backup, a removal into the trash, a change made in another
 * way, a restart), and after each the lists say what inspect says. Over TCP the kept list is gzipped for a
 * client that asks, and unzips to the same bytes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import type * as W from '../../src/wire/types.js';

describe('the volume lists, kept between calls, follow every change', () => {
  let base: string;
  let f: Ferryd;
  let tcpBase: string;
  let token: string;

  const cli = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const plugin = async (call: string, body: Record<string, unknown> = {}) => {
    const a = await f.plugin(call, body);
    assert.equal(a.status, 200, `${call}: ${a.text}`);
    assert.equal(a.json.Err, '', `${call}: ${a.text}`);
    return a.json;
  };
  /** The API's list, checked to be the same bytes on a second call, by name. */
  const apiList = async (): Promise<Map<string, W.ListedVolume>> => {
    const a = await unixRequest(f.apiSocket, 'GET', '/v1/volumes');
    assert.equal(a.status, 200, a.text);
    assert.equal(a.headers['content-type'], 'application/json; charset=utf-8');
    const list = (a.json as W.VolumeList).volumes;
    // a second call answers the same (but for figures the background pass may have changed meanwhile)
    const again = ((await unixRequest(f.apiSocket, 'GET', '/v1/volumes')).json as W.VolumeList).volumes;
    assert.deepEqual(again.map((v) => ({ ...v, usage: undefined })), list.map((v) => ({ ...v, usage: undefined })));

    assert.deepEqual(list.map((v) => v.name), list.map((v) => v.name).sort((x, y) => x.localeCompare(y)), 'sorted by name');
    return new Map(list.map((v) => [v.name, v]));
  };
  const pluginList = async () => {
    const l = (await plugin('List')).Volumes as Array<{ Name: string; Mountpoint: string; CreatedAt: string }>;
    assert.equal((await f.plugin('List')).text, JSON.stringify({ Volumes: l, Err: '' }), 'a second call answers the same');
    return l;
  };
  /**
   * The list's entry of a volume says what inspect says of it. (The background pass, every 200 ms here, may
   * change a figure between the two calls, and what it changes reaches the list at the end of the pass: a
   * few tries; a list kept past a change would never agree.)
   */
  const sameAsInspect = async (name: string) => {
    for (let attempt = 1; ; attempt++) {
      const listed = (await apiList()).get(name);
      assert.ok(listed, `${name} is listed`);
      const short = ((await unixRequest(f.apiSocket, 'GET', '/v1/volumes?view=list')).json as W.VolumeSummaryList).volumes.find((v) => v.name === name);
      assert.ok(short, `${name} is in the list view`);
      const d = JSON.parse(await cli('--json', 'volume', 'inspect', name)) as W.VolumeDetail;
      try {
        for (const k of ['name', 'pool', 'mountpoint', 'createdAt', 'mounts', 'mountIds', 'options', 'labels', 'usage'] as const) assert.deepEqual(listed[k], d[k], `${name}: ${k}`);
        for (const k of ['name', 'pool', 'createdAt', 'mounts', 'labels', 'usage'] as const) assert.deepEqual(short[k], d[k], `${name}: ${k} in the list view`);
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-list-'));
    await writeFile(join(base, 'key'), 'list test secret\n', { mode: 0o600 });
    await mkdir(join(base, 'repo'));
    await writeFile(join(base, 'ferry.yaml'), ['backupTargets:', '  nas:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'key')}`].join('\n'));
    f = await startFerryd({ dir: join(base, 'host'), extraArgs: ['--config', join(base, 'ferry.yaml'), '--api-listen', '127.0.0.1:0'], env: { FERRY_USAGE_INTERVAL_MS: '200' } });
    const ready = (await f.logs()).split('\n').filter((l) => l.includes('"msg":"ferryd ready"')).pop()!;
    tcpBase = `http://${(JSON.parse(ready) as { apiListen: string }).apiListen}`;
    token = (await cli('token', 'create', '--role', 'read', '--name', 'list-test')).trim();
    await cli('backup', 'init', '--target', 'nas');
  });
  after(async () => {
    await f?.destroy();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('Create, Mount, Unmount, usage, snapshot, backup, removal and a restart are each seen at once', async () => {
    assert.equal((await apiList()).size, 0);
    assert.deepEqual(await pluginList(), []);

    await plugin('Create', { Name: 'alpha' });
    await plugin('Create', { Name: 'beta', Opts: { uid: '1000' } });
    let l = await apiList();
    assert.deepEqual([...l.keys()], ['alpha', 'beta']);
    assert.deepEqual((await pluginList()).map((v) => v.Name), ['alpha', 'beta']);
    await sameAsInspect('beta');

    await plugin('Mount', { Name: 'alpha', ID: 'm1' });
    l = await apiList();
    assert.equal(l.get('alpha')!.mounts, 1);
    assert.deepEqual(l.get('alpha')!.mountIds, ['m1']);
    await sameAsInspect('alpha');
    await plugin('Unmount', { Name: 'alpha', ID: 'm1' });
    assert.equal((await apiList()).get('alpha')!.mounts, 0);

    // a usage figure measured on request is in the next list
    await writeFile(join(f.dataDir, 'volumes', 'alpha', 'data', 'blob'), Buffer.alloc(256 * 1024, 7));
    const measured = JSON.parse(await cli('--json', 'volume', 'inspect', '--usage', 'alpha')) as W.VolumeDetail;
    assert.ok(measured.usage!.dataBytes! >= 256 * 1024, JSON.stringify(measured.usage));
    l = await apiList();
    assert.equal(l.get('alpha')!.usage!.dataBytes, measured.usage!.dataBytes);

    // a snapshot, then a backup
    await cli('snapshot', 'create', 'alpha');
    l = await apiList();
    assert.ok(l.get('alpha')!.lastSnapshotAt, 'lastSnapshotAt after a snapshot');
    assert.equal(l.get('beta')!.lastSnapshotAt, undefined);
    await cli('backup', 'create', 'alpha', '--target', 'nas');
    l = await apiList();
    assert.ok(l.get('alpha')!.lastBackupAt, 'lastBackupAt after a backup');

    // a removal: gone from both lists, its trash counted for a volume made again under its name
    await cli('volume', 'rm', 'beta');
    assert.deepEqual([...(await apiList()).keys()], ['alpha']);
    assert.deepEqual((await pluginList()).map((v) => v.Name), ['alpha']);
    await cli('volume', 'create', 'beta');
    await cli('--json', 'volume', 'inspect', '--usage', 'beta'); // measures its trash now
    l = await apiList();
    assert.equal(typeof l.get('beta')!.usage!.trashBytes, 'number', JSON.stringify(l.get('beta')!.usage));
    await sameAsInspect('beta');

    // the background pass's figures arrive too (it runs every 200 ms here)
    await writeFile(join(f.dataDir, 'volumes', 'beta', 'data', 'blob'), Buffer.alloc(512 * 1024, 7));
    await plugin('Mount', { Name: 'beta', ID: 'm2' });
    await plugin('Unmount', { Name: 'beta', ID: 'm2' }); // walked again after its unmount
    const deadline = Date.now() + 10_000;
    while (((await apiList()).get('beta')!.usage!.dataBytes ?? 0) < 512 * 1024) {
      assert.ok(Date.now() < deadline, 'the pass measured beta again within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }

    // over TCP, gzipped (above 16 KiB) for a client that asks, twice (the second zip is kept): the same list
    for (let i = 0; i < 60; i++) await plugin('Create', { Name: `bulk-${String(i).padStart(2, '0')}` });
    const zippedList = () => new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      const req = httpRequest(new URL('/v1/volumes', tcpBase), { headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
    for (let i = 0; i < 2; i++) {
      const zipped = await zippedList();
      const plain = await unixRequest(f.apiSocket, 'GET', '/v1/volumes');
      assert.ok(plain.text.length >= 16 * 1024, `${plain.text.length} bytes`);
      assert.equal(zipped.encoding, 'gzip');
      const unzipped = gunzipSync(zipped.body).toString();
      if (unzipped !== plain.text) assert.deepEqual(JSON.parse(unzipped), plain.json); // (a pass may end between the two)
      assert.equal((JSON.parse(unzipped) as W.VolumeList).volumes.length, 62);
    }

    // removed and made again between two lists: both lists give the new incarnation's creation time
    await plugin('Create', { Name: 'gamma' });
    const first = (await pluginList()).find((v) => v.Name === 'gamma')!;
    assert.equal((await apiList()).get('gamma')!.createdAt, first.CreatedAt);
    await cli('volume', 'rm', '--purge', 'gamma');
    await plugin('Create', { Name: 'gamma' });
    const made = (JSON.parse(await cli('--json', 'volume', 'inspect', 'gamma')) as W.VolumeDetail).createdAt;
    assert.notEqual(made, first.CreatedAt);
    assert.equal((await pluginList()).find((v) => v.Name === 'gamma')!.CreatedAt, made);
    assert.equal((await apiList()).get('gamma')!.createdAt, made);
    await cli('volume', 'rm', '--purge', 'gamma');

    // a restart: the same volumes, mounts and options; the newest snapshot is known again after the first pass
    const before = await apiList();
    await f.stop();
    await f.start();
    let after = await apiList();
    assert.deepEqual([...after.keys()], [...before.keys()]);
    while (!after.get('alpha')!.lastSnapshotAt) {
      await new Promise((r) => setTimeout(r, 100));
      after = await apiList();
    }
    for (const [name, v] of after) assert.deepEqual({ ...v, usage: undefined }, { ...before.get(name)!, usage: undefined }, name);
    for (const name of ['alpha', 'beta']) await sameAsInspect(name);

  });
});
