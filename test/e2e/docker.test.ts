import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { sleep, until } from '../helpers/wait.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { existsSync } from 'node:fs';

const missing = [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...(existsSync('/usr/bin/docker-compose') ? [] : ['docker-compose'])];
const skip = skipUnless(missing, 'end-to-end tests with a real Docker engine');


describe('Ferry under a real Docker engine', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  const run = (...args: string[]) => h.dockerOk(['run', '--rm', '--network', 'none', ...args]);
  const inspect = async (name: string) => JSON.parse((await f.cli('volume', 'inspect', name, '--json')).stdout);

  before(async () => {
    h = await startDockerHost({ name: 'e2e' });
    f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
  });

  it('keeps data written by one container for the next: create, write, remove the container, read', async () => {
    assert.equal((await h.dockerOk(['volume', 'create', '-d', 'ferry', 'e2e-data'])).trim(), 'e2e-data');
    await h.dockerOk(['run', '--name', 'writer', '--network', 'none', '-v', 'e2e-data:/data', 'bb', 'sh', '-c', 'echo hello ferry > /data/greeting && dd if=/dev/urandom of=/data/blob bs=64k count=16 2>/dev/null && sha256sum /data/blob > /data/blob.sum']);
    await h.dockerOk(['rm', 'writer']);
    assert.equal(await run('-v', 'e2e-data:/data', 'bb', 'cat', '/data/greeting'), 'hello ferry\n');
    assert.match(await run('-v', 'e2e-data:/data', 'bb', 'sha256sum', '-c', '/data/blob.sum'), /blob: OK/);
    const ls = await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    assert.match(ls, /^ferry e2e-data$/m);
    const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'e2e-data']))[0];
    assert.equal(vi.Driver, 'ferry');
    assert.equal(vi.Mountpoint, join(f.dataDir, 'volumes', 'e2e-data', 'data'));
    assert.equal(vi.Status.pool, 'local');
    assert.equal((await inspect('e2e-data')).mounts, 0, 'every Mount was matched by an Unmount');
    assert.match((await f.cli('volume', 'ls')).stdout, /^e2e-data\s+local\s+rwx\s+0\s/m);
  });

  it('creates a volume on first use with `docker run -v NAME:/path --volume-driver ferry`, options via --opt', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '--opt', 'uid=1000', '--opt', 'mode=0700', 'e2e-owned']);
    assert.equal((await run('-v', 'e2e-owned:/data', 'bb', 'stat', '-c', '%u %a', '/data')).trim(), '1000 700');
    const bad = await h.docker(['volume', 'create', '-d', 'ferry', '--opt', 'colour=blue', 'e2e-bad']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown volume option "colour"; accepted options: access, backup, backup-keep, backup-keep-base, backup-schedule, backup-target, from, fs, gid, mode, pool, size, snapshot-keep, snapshot-schedule, uid/);
    const badName = await h.docker(['volume', 'create', '-d', 'ferry', '.e2e']);
    assert.notEqual(badName.code, 0);
    await run('--volume-driver', 'ferry', '-v', 'e2e-implicit:/data', 'bb', 'sh', '-c', 'echo implicit > /data/f');
    assert.equal((await inspect('e2e-implicit')).pool, 'local');
  });

  it('puts `docker volume rm` into the trash, from where `ferry volume undelete` brings it back', async () => {
    await run('--volume-driver', 'ferry', '-v', 'e2e-oops:/data', 'bb', 'sh', '-c', 'echo irreplaceable > /data/thesis.txt');
    assert.equal((await h.dockerOk(['volume', 'rm', 'e2e-oops'])).trim(), 'e2e-oops');
    assert.doesNotMatch(await h.dockerOk(['volume', 'ls', '-q']), /e2e-oops/);
    assert.match((await f.cli('trash', 'ls')).stdout, /^e2e-oops@\d+\s+e2e-oops/m);
    assert.equal((await f.cli('volume', 'undelete', 'e2e-oops')).code, 0);
    assert.match(await h.dockerOk(['volume', 'ls', '-q']), /^e2e-oops$/m);
    assert.equal(await run('-v', 'e2e-oops:/data', 'bb', 'cat', '/data/thesis.txt'), 'irreplaceable\n');
    // removed again, and meanwhile a `docker run -v` without the driver made a `local` volume of that name: the
    // undelete brings the data back and says what stands in Docker's way, and how to clear it
    await h.dockerOk(['volume', 'rm', 'e2e-oops']);
    await run('-v', 'e2e-oops:/data', 'bb', 'true');
    const twin = await f.cli('volume', 'undelete', 'e2e-oops');
    assert.equal(twin.code, 0, twin.stderr);
    assert.match(twin.stdout + twin.stderr, /Docker has a local volume e2e-oops now .*`docker volume rm e2e-oops`, then `docker volume create -d ferry`/);
    // and following it gives Docker ferry's volume again, with its data
    await h.dockerOk(['volume', 'rm', 'e2e-oops']); // (the local one)
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'e2e-oops']);
    assert.equal(await run('-v', 'e2e-oops:/data', 'bb', 'cat', '/data/thesis.txt'), 'irreplaceable\n');
  });

  it('serves ten containers on one volume at once, and refuses removal naming them', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'e2e-shared']);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        h.dockerOk(['run', '-d', '--name', `ten-${i}`, '--network', 'none', '-v', 'e2e-shared:/data', 'bb', 'sh', '-c', `echo ${i} > /data/c${i}; exec sleep 600`]),
      ),
    );
    await until('ten files', async () => (await run('-v', 'e2e-shared:/data', 'bb', 'ls', '/data')).split('\n').filter(Boolean).length === 10);
    const v = await inspect('e2e-shared');
    assert.equal(v.mounts, 10, `one mount per running container: ${JSON.stringify(v.mountIds)}`);
    assert.equal(v.containers.length, 10);
    // a container created but never started (as a Swarm's waiting task) references it and holds nothing
    await h.dockerOk(['create', '--name', 'ten-idle', '--network', 'none', '-v', 'e2e-shared:/data', 'bb', 'true']);
    const rm = await f.cli('volume', 'rm', 'e2e-shared');
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /volume e2e-shared is in use by containers .*ten-\d \(running\)/);
    for (let i = 0; i < 10; i++) assert.match(rm.stderr, new RegExp(`ten-${i} \\(running\\)`));
    assert.match(rm.stderr, /; also referenced by 1 not running: ten-idle \(created\); stop/, 'the holders first, the idle one apart');
    const drm = await h.docker(['volume', 'rm', 'e2e-shared']);
    assert.notEqual(drm.code, 0, 'docker refuses too');
    await h.dockerOk(['rm', '-f', 'ten-idle', ...Array.from({ length: 10 }, (_, i) => `ten-${i}`)]);
    await until('all unmounted', async () => (await inspect('e2e-shared')).mounts === 0);
    assert.equal((await run('-v', 'e2e-shared:/data', 'bb', 'sh', '-c', 'cat /data/c*')).split('\n').filter(Boolean).sort().join(','), '0,1,2,3,4,5,6,7,8,9');
  });

  it('survives kill -9 of ferryd while a container writes: no data lost, later Unmount accepted', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'e2e-crash']);
    await h.dockerOk(['run', '-d', '--name', 'ticker', '--network', 'none', '-v', 'e2e-crash:/data', 'bb', 'sh', '-c', 'i=0; while true; do echo $i >> /data/log; i=$((i+1)); sleep 0.02; done']);
    await until('ticking', async () => (await inspect('e2e-crash')).mounts === 1);
    await f.crash();
    const during = await h.dockerOk(['exec', 'ticker', 'wc', '-l', '/data/log']);
    await sleep(500);
    const later = await h.dockerOk(['exec', 'ticker', 'wc', '-l', '/data/log']);
    assert.ok(parseInt(later) > parseInt(during), 'the container keeps writing while ferryd is down');
    await f.start();
    const v = await inspect('e2e-crash');
    assert.equal(v.mounts, 1, 'the reference count survived the crash');
    assert.equal((await f.cli('volume', 'rm', 'e2e-crash')).code, 1, 'still protected after the crash');
    await h.dockerOk(['rm', '-f', 'ticker']);
    await until('unmounted after restart', async () => (await inspect('e2e-crash')).mounts === 0);
    const lines = (await run('-v', 'e2e-crash:/data', 'bb', 'cat', '/data/log')).trim().split('\n').map(Number);
    assert.ok(lines.length > 25);
    lines.forEach((n, i) => assert.equal(n, i, 'every line the container wrote is there, in order'));
  });

  it('keeps volumes and data across a restart of Docker', async () => {
    await h.restart();
    const ls = await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    for (const v of ['e2e-data', 'e2e-oops', 'e2e-shared', 'e2e-crash']) assert.match(ls, new RegExp(`^ferry ${v}$`, 'm'));
    assert.equal(await run('-v', 'e2e-data:/data', 'bb', 'cat', '/data/greeting'), 'hello ferry\n');
  });

  it('works with Compose `driver: ferry`; `down -v` is recoverable from the trash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-compose-'));
    try {
      writeFileSync(
        join(dir, 'docker-compose.yml'),
        [
          "version: '3.7'",
          'services:',
          '  app:',
          '    image: bb',
          '    network_mode: none',
          "    command: ['sh', '-c', 'echo from-compose > /data/out; sleep 600']",
          '    volumes:',
          '      - appdata:/data',
          'volumes:',
          '  appdata:',
          '    driver: ferry',
          '    driver_opts:',
          "      mode: '0770'",
          '',
        ].join('\n'),
      );
      const up = await h.compose(['up', '-d'], { cwd: dir, projectName: 'shop' });
      assert.equal(up.code, 0, up.stderr);
      const v = await until('compose volume mounted', async () => {
        const r = await f.cli('volume', 'inspect', 'shop_appdata', '--json');
        return r.code === 0 && JSON.parse(r.stdout).mounts === 1 ? JSON.parse(r.stdout) : undefined;
      });
      assert.equal(v.options.mode, 0o770);
      const di = JSON.parse(await h.dockerOk(['volume', 'inspect', 'shop_appdata']))[0];
      assert.equal(di.Status.options.mode, '0770', 'docker volume inspect shows the mode in octal, as written');
      await until('written', async () => (await run('-v', 'shop_appdata:/data', 'bb', 'cat', '/data/out').catch(() => '')) === 'from-compose\n');
      const down = await h.compose(['down', '-v'], { cwd: dir, projectName: 'shop' });
      assert.equal(down.code, 0, down.stderr);
      assert.doesNotMatch(await h.dockerOk(['volume', 'ls', '-q']), /shop_appdata/);
      assert.equal((await f.cli('volume', 'undelete', 'shop_appdata')).code, 0);
      assert.equal(await run('-v', 'shop_appdata:/data', 'bb', 'cat', '/data/out'), 'from-compose\n');
    } finally {
      await h.compose(['down'], { cwd: dir, projectName: 'shop' }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
