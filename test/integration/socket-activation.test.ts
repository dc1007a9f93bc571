import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holdSocket, type SocketHolder } from '../helpers/socket-holder.js';
import { unixRequest } from '../helpers/ferryd.js';
import { skipUnless } from '../helpers/prereq.js';

const skip = skipUnless(existsSync('/usr/bin/systemd-socket-activate') ? [] : ['systemd-socket-activate (package systemd)'], 'socket activation tests');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('socket activation: Docker connects while ferryd is not running', { skip }, () => {
  let sock: string;
  let h: SocketHolder;
  let tmp: string;
  const call = (method: string, body: unknown = {}) => unixRequest(sock, 'POST', `/VolumeDriver.${method}`, JSON.stringify(body));

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'ferry-sock-'));
    sock = join(tmp, 'ferry.sock');
    h = await holdSocket({ socket: sock });
  });
  after(async () => {
    await h?.destroy();
    await rm(tmp, { recursive: true, force: true });
  });

  it('answers a call that arrived before ferryd started, instead of refusing the connection', async () => {
    const early = unixRequest(sock, 'POST', '/Plugin.Activate', '{}');
    let answered = false;
    void early.then(() => (answered = true));
    await sleep(1500);
    assert.equal(answered, false, 'nothing answers while no ferryd runs: the call waits in the socket queue');
    await h.startFerryd();
    const a = await early;
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { Implements: ['VolumeDriver'] });
    const st = JSON.parse((await h.cli('status', '--json')).stdout);
    assert.deepEqual(st.socketActivated, ['plugin']);
    assert.match((await h.cli('status')).stdout, /plugin socket: .*ferry\.sock \(held by systemd\)/);
  });

  it('keeps a volume through kill -9 and restart: a Get sent while ferryd is down is answered with the volume', async () => {
    assert.equal((await call('Create', { Name: 'held', Opts: {} })).json.Err, '');
    const m = await call('Mount', { Name: 'held', ID: 'c1' });
    assert.equal(m.json.Err, '');
    await h.crashFerryd();
    const pending = call('Get', { Name: 'held' });
    const listing = call('List');
    await sleep(500);
    await h.startFerryd();
    const g = await pending;
    assert.equal(g.json.Err, '', 'never "no such volume", never a refused connection');
    assert.equal(g.json.Volume.Name, 'held');
    assert.deepEqual((await listing).json.Volumes.map((v: { Name: string }) => v.Name), ['held']);
    const inspect = JSON.parse((await h.cli('volume', 'inspect', 'held', '--json')).stdout);
    assert.equal(inspect.mounts, 1, 'the acknowledged Mount survived the crash');
  });

  it('leaves the socket to systemd on a clean stop: the path stays, the next ferryd serves it', async () => {
    const st = JSON.parse((await h.cli('status', '--json')).stdout);
    process.kill(st.pid, 'SIGTERM');
    while (existsSync(`/proc/${st.pid}`)) await sleep(20);
    assert.ok(existsSync(sock), 'ferryd did not remove the socket systemd holds');
    const pending = call('Path', { Name: 'held' });
    await h.startFerryd();
    assert.match((await pending).json.Mountpoint, /held/);
  });
});
