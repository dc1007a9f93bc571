// Issue 12 item 1 in a Swarm: a node's Docker comes back before its ferryd; its task must find its data, never an empty twin.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { startCluster, clusterPrerequisites, type Cluster, type ClusterHost } from '../helpers/cluster.js';
import { makeSharedDir, sharedConfig } from '../helpers/shared-node.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...clusterPrerequisites()], 'Swarm boot order (two private Docker engines on a LAN)');

/**
 * Two Docker hosts in a Swarm, a ferryd on each, one shared pool (a directory both see). A service's task runs on
 * hostB with its volume. hostB's Docker restarts (a reboot) while its ferryd stays down for 20 s: Swarm's tries to
 * start the task there fail (no plugin). Once ferryd is up, the task runs again on hostB with every byte of its
 * volume, and at no time did Docker make a volume of another driver (a `local` twin) or an empty ferry volume.
 */
describe('Swarm boot order: Docker back before ferryd', { skip, timeout: 600_000 }, () => {
  let c: Cluster;
  let A: ClusterHost;
  let B: ClusterHost;

  before(async () => {
    c = await startCluster({ hosts: 2, name: 'swboot' });
    [A, B] = c.hosts as [ClusterHost, ClusterHost];
    const pool = await makeSharedDir(join(c.dir, 'nas'));
    await Promise.all(c.hosts.map((h) => h.startFerryd({ configYaml: sharedConfig(h.name, pool, { heartbeatMs: 500, nodeTimeoutMs: 3000 }) })));
    await c.swarm();
  });
  after(async () => {
    await c?.stop();
  });

  it('the task comes back on its node with its data once ferryd is there; no twin of another driver, no empty volume', async (t) => {
    await A.dockerOk([
      'service', 'create', '--detach', '--name', 'db', '--no-resolve-image', '--stop-grace-period', '1s',
      '--mount', 'type=volume,source=dbdata,target=/data,volume-driver=ferry',
      '--constraint', 'node.hostname==hostB',
      'bb', 'sh', '-c', '[ -f /data/blob ] || { dd if=/dev/urandom of=/data/blob bs=64k count=64 2>/dev/null; sha256sum /data/blob > /data/blob.sum; sync; }; date +%s >> /data/boots; exec sleep 3600',
    ]);
    const first = await c.waitForTask('db', 'hostB');
    await until('the task wrote its data', async () => (await B.docker(['exec', first, 'cat', '/data/boots'])).stdout.trim().length > 0, 30_000);
    const sum = await B.dockerOk(['exec', first, 'cat', '/data/blob.sum']);

    // hostB reboots: Docker first, ferryd 20 s later
    await B.ferryd!.stop();
    const t0 = Date.now();
    await B.engine.restart({ readyTimeoutMs: 120_000 });
    await sleep(20_000);
    const tries = (await A.dockerOk(['service', 'ps', 'db', '--format', '{{.Node}} {{.CurrentState}} {{.Error}}'])).trim();
    const running = async () => (await B.docker(['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=db', '--filter', 'status=running'])).stdout.trim().split('\n').filter(Boolean);
    assert.deepEqual(await running(), [], `no task may run on hostB without ferryd (tasks: ${tries})`);
    const lsDown = (await B.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).trim();
    assert.doesNotMatch(lsDown, /^local dbdata$/m, 'Docker made a local twin of dbdata');

    await B.ferryd!.restart();
    const t1 = Date.now();
    await until('the task runs again on hostB', async () => (await running()).length === 1, 120_000);
    const again = (await running())[0]!;
    assert.notEqual(again, first, 'a new task container');
    assert.equal(await B.dockerOk(['exec', again, 'cat', '/data/blob.sum']), sum, 'the same data, not an empty volume');
    assert.match(await B.dockerOk(['exec', again, 'sha256sum', '-c', '/data/blob.sum']), /blob: OK/);
    assert.equal((await B.dockerOk(['exec', again, 'cat', '/data/boots'])).trim().split('\n').length, 2, 'the volume has both boots: it is the first task\'s');
    for (const h of [A, B]) assert.deepEqual((await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).trim().split('\n').filter((l) => / dbdata$/.test(l)), ['ferry dbdata'], `docker volume ls on ${h.name}`);
    t.diagnostic(`swarm boot order: Docker back ${((t1 - t0) / 1000 - 20).toFixed(1)} s after its restart began (+20 s without ferryd); the task ran again ${((Date.now() - t1) / 1000).toFixed(1)} s after ferryd started; Swarm's tries meanwhile: ${tries.split('\n').length}`);
    await A.dockerOk(['service', 'rm', 'db']);
  });
});
