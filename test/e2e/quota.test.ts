/**
 * Volume sizes under a real Docker engine (issue 16, item 2): a container that writes past `-o size=` of a
 * volume on a loop-mounted btrfs pool is refused at the limit (EDQUOT, "Disk quota exceeded"), `docker volume
 * inspect` shows the limit and the use, and `docker volume rm` + `docker volume create` of the same name
 * gives the new volume its own limit (moby#43891: the limit was lost after a re-create).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { makeLoopFs, loopFsPrerequisites, type LoopFs } from '../helpers/loopfs.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const MiB = 2 ** 20;
const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...loopFsPrerequisites('btrfs')], 'volume sizes with a real Docker engine on a loop-mounted btrfs');

async function maxReferenced(path: string): Promise<number | null> {
  const r = await run('btrfs', ['qgroup', 'show', '-reF', '--raw', path]);
  assert.equal(r.code, 0, r.stderr);
  const row = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => /^0\/\d+$/.test(f[0] ?? ''))!;
  return row[3] === 'none' ? null : Number(row[3]);
}

describe('volume sizes under a real Docker engine', { skip }, () => {
  let fs: LoopFs;
  let h: DockerHost;
  let f: Ferryd;
  let dir: string;
  const data = (v: string) => join(fs.mountpoint, 'volumes', v, 'data');
  const inDocker = (v: string, script: string) => h.docker(['run', '--rm', '--network', 'none', '-v', `${v}:/data`, 'bb', 'sh', '-c', script]);

  before(async () => {
    // the pool first: the engine's mount namespace must see it
    fs = await makeLoopFs('btrfs', 1024);
    dir = await mkdtemp(join(tmpdir(), 'ferry-quota-e2e-'));
    await writeFile(join(dir, 'ferry.yaml'), ['pools:', '  cow:', `    path: ${fs.mountpoint}`, 'defaultPool: cow'].join('\n'));
    h = await startDockerHost({ name: 'quota' });
    f = await startFerryd({ dir: join(dir, 'ferryd'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, extraArgs: ['--config', join(dir, 'ferry.yaml')] });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
    await fs?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a container writing past size= gets "Disk quota exceeded" at the limit (within 1 %); then it can delete and write again', async (t) => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'size=64M', 'capped']);
    const w = await inDocker('capped', 'dd if=/dev/urandom of=/data/f bs=64k 2>&1; echo "exit $?"; sync; stat -c %s /data/f');
    t.diagnostic(`container: ${w.stdout.trim().replace(/\n/g, ' | ')}`);
    assert.match(w.stdout, /Disk quota exceeded/);
    assert.match(w.stdout, /exit 1/);
    const size = Number(w.stdout.trim().split('\n').pop());
    t.diagnostic(`the writer stopped at ${size} bytes = ${((100 * size) / (64 * MiB)).toFixed(2)} % of 64 MiB`);
    assert.ok(size >= 0.99 * 64 * MiB && size <= 64 * MiB, `stopped at ${size}`);
    // nothing else breaks: the volume is readable, a file can be deleted and the space written again
    const again = await inDocker('capped', 'rm /data/f && sync && dd if=/dev/zero of=/data/g bs=1M count=32 2>/dev/null && sync && echo written');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /written/);
  });

  it('docker volume inspect shows the limit and the use', async () => {
    await new Promise((res) => setTimeout(res, 1_100)); // Get may answer with a measurement up to 1 s old
    const v = JSON.parse(await h.dockerOk(['volume', 'inspect', 'capped']))[0];
    assert.equal(v.Driver, 'ferry');
    assert.equal(v.Status.options.size, '64 MiB');
    assert.equal(v.Status.size.limit, '64 MiB');
    assert.equal(v.Status.size.limitBytes, 64 * MiB);
    assert.equal(v.Status.size.enforcedBytes, 64 * MiB);
    assert.ok(v.Status.size.usedBytes >= 32 * MiB && v.Status.size.usedBytes < 33 * MiB, JSON.stringify(v.Status.size));
    // and after a resize (ferry's CLI), Docker's Get answers with the new limit
    const r = await f.cli('volume', 'resize', 'capped', '128M');
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 1_100));
    const v2 = JSON.parse(await h.dockerOk(['volume', 'inspect', 'capped']))[0];
    assert.equal(v2.Status.size.limit, '128 MiB');
    assert.equal(v2.Status.size.enforcedBytes, 128 * MiB);
  });

  it('docker volume rm + docker volume create of the same name: the new volume has its own limit (moby#43891)', async () => {
    await h.dockerOk(['volume', 'rm', 'capped']);
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'size=16M', 'capped']);
    assert.equal(await maxReferenced(data('capped')), 16 * MiB);
    const w = await inDocker('capped', 'dd if=/dev/zero of=/data/f bs=64k 2>&1; sync; stat -c %s /data/f');
    assert.match(w.stdout, /Disk quota exceeded/);
    const size = Number(w.stdout.trim().split('\n').pop());
    assert.ok(size >= 0.99 * 16 * MiB && size <= 16 * MiB, `stopped at ${size}`);
    // and once more without a size: no limit is left over from the earlier volume
    await h.dockerOk(['volume', 'rm', 'capped']);
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'capped']);
    assert.equal(await maxReferenced(data('capped')), null);
    const big = await inDocker('capped', 'dd if=/dev/zero of=/data/f bs=1M count=80 2>/dev/null && echo ok');
    assert.equal(big.code, 0, big.stderr);
    // undelete of the 16M one under another name keeps its limit
    const trash = JSON.parse((await f.cli('--json', 'trash', 'ls')).stdout) as Array<{ id: string; name: string; removedAt: string }>;
    const sixteen = trash.filter((e) => e.name === 'capped').sort((a, b) => b.removedAt.localeCompare(a.removedAt))[0]!;
    const u = await f.cli('volume', 'undelete', sixteen.id, '--as', 'capped-16');
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await maxReferenced(data('capped-16')), 16 * MiB);
    // the one resized to 128M (Docker's store still has the size=64M it was created with): undeleted, Docker knows it again
    await h.dockerOk(['volume', 'rm', 'capped']);
    const resized = trash.filter((e) => e.name === 'capped').sort((a, b) => a.removedAt.localeCompare(b.removedAt))[0]!;
    const u2 = await f.cli('volume', 'undelete', resized.id);
    assert.equal(u2.code, 0, u2.stderr);
    assert.match(u2.stdout, /Docker knows it again .*option size=64M/, u2.stdout);
    assert.equal(await maxReferenced(data('capped')), 128 * MiB);
    const v = JSON.parse(await h.dockerOk(['volume', 'inspect', 'capped']))[0];
    assert.equal(v.Status.size.limit, '128 MiB');
    assert.equal(v.Options.size, '64M', "Docker's own copy of the options: the size given at create");
  });

  it('resize while a container has the volume mounted and writes: the writer goes past the old limit', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'size=32M', 'online']);
    // 24 MiB, then wait for the go-ahead (a file the test makes), then 40 MiB more: past the 32M it started with
    const script = 'i=0; while [ $i -lt 64 ]; do [ $i -eq 24 ] && while [ ! -e /data/go ]; do sleep 0.05; done; dd if=/dev/zero of=/data/f$i bs=1M count=1 2>&1 | grep -i quota && exit 1; i=$((i+1)); done; sync; echo done';
    await h.dockerOk(['run', '-d', '--name', 'online-writer', '--network', 'none', '-v', 'online:/data', 'bb', 'sh', '-c', script]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if ((await run('test', ['-e', join(data('online'), 'f23')])).code === 0) break;
      assert.ok(Date.now() < deadline, 'the writer wrote its first 24 MiB within a minute');
      await new Promise((res) => setTimeout(res, 50));
    }
    const r = await f.cli('volume', 'resize', 'online', '96M');
    assert.equal(r.code, 0, r.stderr);
    await writeFile(join(data('online'), 'go'), '');
    const code = (await h.dockerOk(['wait', 'online-writer'])).trim();
    const logs = await h.docker(['logs', 'online-writer']);
    assert.equal(code, '0', `writer: ${logs.stdout}${logs.stderr}`);
    assert.match(logs.stdout, /done/);
    assert.equal(await maxReferenced(data('online')), 96 * MiB);
    await h.dockerOk(['rm', 'online-writer']);
  });

  it('a nonsense size is refused, and Docker says why', async () => {
    const r = await h.docker(['volume', 'create', '-d', 'ferry', '-o', 'size=lots', 'nonsense']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /option size=.*expected a size such as 10G/);
  });
});
