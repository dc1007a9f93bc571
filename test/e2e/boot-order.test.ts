// Boot order: containers Docker could not start because ferry (or its share) was not ready run once it is.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { until } from '../helpers/wait.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'boot-order tests with a real Docker engine');

interface State {
  Status: string;
  Running: boolean;
  Error: string;
  StartedAt: string;
}

describe('boot order: Docker up before ferry', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  let dir: string;
  let nas: string;
  const state = async (name: string): Promise<State> => JSON.parse(await h.dockerOk(['inspect', '--format', '{{json .State}}', name]));
  const read = (vol: string, file: string) => h.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, 'bb', 'cat', `/data/${file}`]);
  // the user's service: counts its boots into the volume, keeps a checksummed file, then serves
  const service = (name: string, vol: string, policy: string) =>
    h.dockerOk(['run', '-d', '--name', name, '--restart', policy, '--network', 'none', '-v', `${vol}:/data`, 'bb', 'sh', '-c',
      'test -f /data/blob || { dd if=/dev/urandom of=/data/blob bs=64k count=8 2>/dev/null; sha256sum /data/blob > /data/blob.sum; }; date +%s >> /data/boots; exec sleep 3600']);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-boot-'));
    // a shared pool on a directory of this machine's root filesystem: without its marker it is a share
    // that is not mounted yet, and ferryd refuses to use it
    nas = join(dir, 'nas');
    await mkdir(nas);
    await writeFile(join(nas, '.ferry-pool'), '');
    await writeFile(join(dir, 'ferry.yaml'), `pools:\n  nas:\n    path: ${nas}\n    shared: true\n`);
    h = await startDockerHost({ name: 'boot' });
    f = await startFerryd({ dir: join(dir, 'ferryd'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, extraArgs: ['--config', join(dir, 'ferry.yaml')] });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts a --restart always container Docker gave up on while ferryd was down, with its data', async (t) => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'pgdata']);
    await service('db', 'pgdata', 'always');
    // a container the user stopped on purpose (unless-stopped): Docker does not start it at boot; ferry must not either
    await h.dockerOk(['run', '-d', '--name', 'parked', '--restart', 'unless-stopped', '--network', 'none', '-v', 'pgdata:/data', 'bb', 'sleep', '3600']);
    await h.dockerOk(['stop', '-t', '1', 'parked']);
    await until('db wrote its first boot', async () => (await h.docker(['exec', 'db', 'cat', '/data/boots'])).stdout.trim().split('\n').length === 1);
    const sum = await h.dockerOk(['exec', 'db', 'cat', '/data/blob.sum']);

    // the host reboots: Docker comes back, ferryd does not (yet)
    await f.stop();
    const t0 = Date.now();
    await h.restart({ readyTimeoutMs: 300_000 });
    t.diagnostic(`dockerd start without the plugin: ${Date.now() - t0} ms`);
    const down = await state('db');
    assert.equal(down.Running, false, 'Docker could not start it without the plugin');
    assert.match(down.Error, /plugin "?ferry"? not found/, 'and says why');

    const t1 = Date.now();
    await f.start();
    await until('db running again', async () => (await state('db')).Running, 60_000);
    t.diagnostic(`ferryd start to db running: ${Date.now() - t1} ms`);
    assert.equal((await read('pgdata', 'boots')).trim().split('\n').length, 2, 'the same volume: its first boot is there, and the second');
    assert.equal(await h.dockerOk(['exec', 'db', 'cat', '/data/blob.sum']), sum);
    assert.match(await h.dockerOk(['exec', 'db', 'sha256sum', '-c', '/data/blob.sum']), /blob: OK/);
    // no empty twin of another driver under the same name
    assert.equal((await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).trim(), 'ferry pgdata');
    assert.equal((await state('parked')).Running, false, 'a container stopped on purpose stays stopped');
    assert.match(await f.logs(), /started a container that Docker had left stopped because ferry was not ready/);
    const v = JSON.parse((await f.cli('volume', 'inspect', 'pgdata', '--json')).stdout);
    assert.equal(v.mounts, 1);
    await h.dockerOk(['rm', '-f', 'db', 'parked']);
  });

  it('starts a --restart always container whose share was not mounted at boot, once it is', async (t) => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=nas', 'shared-data']);
    await service('web', 'shared-data', 'always');
    await until('web wrote its first boot', async () => (await h.docker(['exec', 'web', 'cat', '/data/boots'])).stdout.trim().split('\n').length === 1);
    const sum = await h.dockerOk(['exec', 'web', 'cat', '/data/blob.sum']);

    // the share is not there when the host boots (the marker is what ferryd checks)
    await rename(join(nas, '.ferry-pool'), join(dir, 'marker-away'));
    await h.restart({ readyTimeoutMs: 300_000 });
    const down = await state('web');
    assert.equal(down.Running, false);
    assert.match(down.Error, /pool nas is not usable/, 'ferry refused to mount a volume of a share that is not there');
    const ls = await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    assert.match(ls, /^ferry shared-data$/m, 'Docker still lists the volume (ferryd answers from what it knows)');
    assert.doesNotMatch(ls, /^local /m, 'and made no local twin');

    await rename(join(dir, 'marker-away'), join(nas, '.ferry-pool'));
    const t1 = Date.now();
    await until('web running again', async () => (await state('web')).Running, 60_000);
    t.diagnostic(`share back to web running: ${Date.now() - t1} ms`);
    assert.equal((await h.dockerOk(['exec', 'web', 'cat', '/data/boots'])).trim().split('\n').length, 2);
    assert.equal(await h.dockerOk(['exec', 'web', 'cat', '/data/blob.sum']), sum);
    assert.match(await h.dockerOk(['exec', 'web', 'sha256sum', '-c', '/data/blob.sum']), /blob: OK/);
    await h.dockerOk(['rm', '-f', 'web']);
  });
});
