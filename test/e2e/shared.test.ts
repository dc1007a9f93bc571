import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'shared pools under two real Docker engines');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two Docker hosts (private engines) with a ferryd each, sharing one pool: a plain directory that both
 * engines see, marked as shared (what an NFS mount is on real hosts).
 */
describe('shared pool under two Docker engines', { skip }, () => {
  let base: string;
  const hosts: Record<'A' | 'B', { h: DockerHost; f: Ferryd }> = {} as never;
  const NODE_TIMEOUT_MS = 2000;

  const node = async (n: 'A' | 'B', pool: string) => {
    const h = await startDockerHost({ name: `shared${n}` });
    const dir = join(base, `node${n}`);
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'ferry.yaml'),
      [`node: node${n}`, 'heartbeatInterval: 300ms', `nodeTimeout: ${NODE_TIMEOUT_MS}ms`, 'defaultPool: nas', 'pools:', '  nas:', `    path: ${pool}`, '    shared: true'].join('\n'),
    );
    const f = await startFerryd({ dir, pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', `node${n}`] });
    hosts[n] = { h, f };
  };
  const on = (n: 'A' | 'B') => hosts[n].h;
  const run = (n: 'A' | 'B', ...args: string[]) => on(n).dockerOk(['run', '--rm', '--network', 'none', ...args]);

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-e2e-shared-'));
    const pool = join(base, 'nas');
    await mkdir(pool);
    await writeFile(join(pool, '.ferry-pool'), 'a directory both test hosts share\n');
    await Promise.all([node('A', pool), node('B', pool)]);
  });
  after(async () => {
    for (const n of ['A', 'B'] as const) {
      await hosts[n]?.h.stop();
      await hosts[n]?.f.destroy();
    }
    await rm(base, { recursive: true, force: true });
  });

  it('a volume created and written on host A is listed and read on host B', async () => {
    await on('A').dockerOk(['volume', 'create', '-d', 'ferry', 'pgdata']);
    await run('A', '-v', 'pgdata:/data', 'bb', 'sh', '-c', 'dd if=/dev/urandom of=/data/blob bs=64k count=32 2>/dev/null && sha256sum /data/blob > /data/blob.sum && echo from-A > /data/who');
    assert.match(await on('B').dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']), /^ferry pgdata$/m);
    assert.equal(await run('B', '-v', 'pgdata:/data', 'bb', 'cat', '/data/who'), 'from-A\n');
    assert.match(await run('B', '-v', 'pgdata:/data', 'bb', 'sha256sum', '-c', '/data/blob.sum'), /blob: OK/);
  });

  it('rwx: containers on both hosts write at once and each sees the other', async () => {
    await on('A').dockerOk(['volume', 'create', '-d', 'ferry', 'scratch']);
    const writer = (n: 'A' | 'B') => run(n, '-v', 'scratch:/s', 'bb', 'sh', '-c', `for i in $(seq 1 200); do echo $i >> /s/${n}.log; done`);
    await Promise.all([writer('A'), writer('B')]);
    for (const n of ['A', 'B'] as const) {
      assert.equal(await run(n, '-v', 'scratch:/s', 'bb', 'sh', '-c', 'wc -l < /s/A.log; wc -l < /s/B.log'), '200\n200\n');
    }
  });

  it('snapshot --exec runs where the containers are: refused on B while A mounts the volume; --pause refused on a shared pool', async () => {
    await on('A').dockerOk(['volume', 'create', '-d', 'ferry', 'quiet']);
    await on('A').dockerOk(['run', '-d', '--name', 'quiet-a', '--network', 'none', '-v', 'quiet:/data', 'bb', 'sh', '-c', 'echo A > /data/who; sleep 600']);
    const onB = await hosts.B.f.cli('snapshot', 'create', '--exec', 'sync', 'quiet');
    assert.equal(onB.code, 1, onB.stdout);
    assert.match(onB.stderr, /volume quiet is mounted on node nodeA: --exec reaches the containers of this node only; run `ferry snapshot create --exec \.\.\.` on nodeA/);
    const paused = await hosts.A.f.cli('snapshot', 'create', '--pause', 'quiet');
    assert.equal(paused.code, 1, paused.stdout);
    assert.match(paused.stderr, /--pause is refused for volumes of a shared pool \(\w+\): .*use --exec 'COMMAND'/);
    assert.equal(JSON.parse((await hosts.A.f.cli('--json', 'snapshot', 'ls', 'quiet')).stdout).length, 0, 'nothing made');
    // on A, where the container runs, --exec does what it says
    const here = await hosts.A.f.cli('--json', 'snapshot', 'create', '--exec', 'sync', 'quiet');
    assert.equal(here.code, 0, here.stderr);
    await on('A').dockerOk(['rm', '-f', 'quiet-a']);
  });

  it('rwo: refused on B while A holds it, allowed after A stops, taken over after A dies', async () => {
    await on('A').dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', 'db']);
    await on('A').dockerOk(['run', '-d', '--name', 'db-a', '--network', 'none', '-v', 'db:/data', 'bb', 'sh', '-c', 'echo A > /data/owner; sleep 600']);
    await sleep(700); // a heartbeat: the attachment carries the container's name
    const refused = await on('B').docker(['run', '--rm', '--network', 'none', '-v', 'db:/data', 'bb', 'cat', '/data/owner']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /volume db is rwo \(one host at a time\) and node nodeA holds it \(containers db-a/);
    const status = await hosts.B.f.cli('status');
    assert.match(status.stdout, /^db\s+nodeA\s+rwo\s+1\s+db-a\s/m);
    await on('A').dockerOk(['rm', '-f', 'db-a']);
    assert.equal(await run('B', '-v', 'db:/data', 'bb', 'cat', '/data/owner'), 'A\n');
    // A holds it again, then its ferryd and its Docker engine die
    await on('A').dockerOk(['run', '-d', '--name', 'db-a2', '--network', 'none', '-v', 'db:/data', 'bb', 'sleep', '600']);
    assert.notEqual((await on('B').docker(['run', '--rm', '--network', 'none', '-v', 'db:/data', 'bb', 'true'])).code, 0);
    await hosts.A.f.crash();
    await hosts.A.h.stop();
    await sleep(NODE_TIMEOUT_MS + 500);
    assert.equal(await run('B', '-v', 'db:/data', 'bb', 'sh', '-c', 'echo B > /data/owner; cat /data/owner'), 'B\n');
    assert.match((await hosts.B.f.cli('status')).stdout, /^nodeA\s+DEAD\s/m);
  });
});
