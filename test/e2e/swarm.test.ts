/**
 * The case Ferry exists for: a Swarm of three Docker hosts and a GlusterFS volume that every host's
 * ferryd mounts itself (pool `mount:`), holding the volumes and their catalog. A volume made on one
 * host is read on the others, a service moved from host to host finds every byte, `docker stack deploy`
 * with `driver: ferry` works, and `ferry status` on any host shows the cluster.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { startCluster, clusterPrerequisites, blobServiceArgs, type Cluster, type ClusterHost } from '../helpers/cluster.js';
import { startGluster, glusterPrerequisites, glusterPoolConfig, type Gluster } from '../helpers/gluster.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless(
  [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...clusterPrerequisites(), ...glusterPrerequisites()],
  'Swarm on a GlusterFS shared pool',
);

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a Swarm of three hosts on a GlusterFS shared pool', { skip, timeout: 900_000 }, () => {
  let c: Cluster;
  let g: Gluster;
  let A: ClusterHost;
  let B: ClusterHost;
  let C: ClusterHost;
  const run = (h: ClusterHost, ...args: string[]) => h.dockerOk(['run', '--rm', '--network', 'none', ...args]);

  before(async () => {
    c = await startCluster({ hosts: 3, name: 'swarmfs' });
    g = await startGluster(c);
    [A, B, C] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
    const config = (h: ClusterHost) => glusterPoolConfig(h.name, join(c.dir, 'nas'), g);
    // every ferryd mounts gv0 itself, inside its host's mount namespace
    await Promise.all(c.hosts.map((h) => h.startFerryd({ configYaml: config(h) })));
    await c.swarm();
  });
  after(async () => {
    await c?.stop();
  });

  it('mounted the share on every host; status shows three live nodes and the pool', async () => {
    for (const h of c.hosts) {
      assert.match(await h.execOk('cat', ['/proc/self/mounts']), new RegExp(`^${g.device.replace(/\./g, '\\.')} ${join(c.dir, 'nas')} fuse.glusterfs`, 'm'));
    }
    await waitFor('three nodes in the heartbeats', async () => (JSON.parse((await C.ferryd!.cli('--json', 'status')).stdout).cluster?.nodes ?? []).filter((n: { alive: boolean }) => n.alive).length === 3);
    const st = await C.ferryd!.cli('status');
    for (const n of ['hostA', 'hostB', 'hostC']) assert.match(st.stdout, new RegExp(`^${n}( \\(this node\\))?\\s+alive\\s`, 'm'));
    assert.match(st.stdout, /^nas\s+dir shared\s+ok\s/m);
  });

  it('a volume created and written on hostA is read, byte for byte, on hostB and hostC', async () => {
    await A.dockerOk(['volume', 'create', '-d', 'ferry', 'results']);
    await run(A, '-v', 'results:/r', 'bb', 'sh', '-c', 'dd if=/dev/urandom of=/r/data bs=1M count=8 2>/dev/null && sha256sum /r/data > /r/data.sum && sync');
    for (const h of [B, C]) {
      // the list shows it once this host's attributes of the shared catalog directory do (GlusterFS caches
      // them for 1 s; ferryd lists the catalog again only when they change: docs/shared-pools.md)
      await waitFor(`${h.name} lists the volume`, async () => /^ferry results$/m.test(await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])), 10_000);
      assert.match(await run(h, '-v', 'results:/r', 'bb', 'sha256sum', '-c', '/r/data.sum'), /data: OK/);
    }
  });

  it('a service with a ferry volume moves from hostA to hostB and finds every byte', async () => {
    await c.manager.dockerOk(blobServiceArgs('db', 'dbdata', 'hostA'));
    const onA = await c.waitForTask('db', 'hostA');
    await waitFor('the writer on hostA', async () => (await A.docker(['exec', onA, 'cat', '/data/seen'])).stdout.trim().length > 0);
    const sumOnA = await A.dockerOk(['exec', onA, 'cat', '/data/blob.sum']);
    await c.manager.dockerOk(['service', 'update', '--detach', '--constraint-rm', 'node.hostname==hostA', '--constraint-add', 'node.hostname==hostB', 'db']);
    const onB = await c.waitForTask('db', 'hostB');
    assert.equal(await B.dockerOk(['exec', onB, 'cat', '/data/blob.sum']), sumOnA);
    assert.match(await B.dockerOk(['exec', onB, 'sha256sum', '-c', '/data/blob.sum']), /blob: OK/);
    await waitFor('the second start in /data/seen', async () => (await B.dockerOk(['exec', onB, 'cat', '/data/seen'])).trim().split('\n').length === 2);
    // one volume in the cluster, attached on hostB now
    const v = JSON.parse((await C.ferryd!.cli('--json', 'volume', 'inspect', 'dbdata')).stdout);
    assert.equal(v.pool, 'nas');
    await waitFor('the attachment to follow the task', async () => {
      const x = JSON.parse((await C.ferryd!.cli('--json', 'volume', 'inspect', 'dbdata')).stdout);
      return x.attachments.length === 1 && x.attachments[0].node === 'hostB';
    });
    await c.manager.dockerOk(['service', 'rm', 'db']);
  });

  it('docker stack deploy with a Compose file that uses driver: ferry', async () => {
    const file = join(c.dir, 'stack.yml');
    writeFileSync(
      file,
      [
        'version: "3.8"',
        'services:',
        '  app:',
        '    image: bb',
        '    command: ["sh", "-c", "echo stacked > /state/hello; exec sleep 3600"]',
        '    stop_grace_period: 1s',
        '    volumes: [appstate:/state]',
        '    deploy:',
        '      placement: { constraints: ["node.hostname==hostC"] }',
        'volumes:',
        '  appstate:',
        '    driver: ferry',
        '    driver_opts: { access: rwo }',
      ].join('\n'),
    );
    await c.manager.dockerOk(['stack', 'deploy', '--resolve-image', 'never', '--detach=true', '-c', file, 'shop']);
    const task = await c.waitForTask('shop_app', 'hostC');
    await waitFor('the app to write', async () => (await C.docker(['exec', task, 'cat', '/state/hello'])).stdout === 'stacked\n');
    const v = JSON.parse((await A.ferryd!.cli('--json', 'volume', 'inspect', 'shop_appstate')).stdout);
    assert.equal(v.pool, 'nas');
    assert.equal(v.access, 'rwo');
    // rwo: held by hostC, so hostA cannot mount it
    const refused = await A.docker(['run', '--rm', '--network', 'none', '-v', 'shop_appstate:/s', 'bb', 'true']);
    assert.notEqual(refused.code, 0, `hostA mounted the volume hostC holds: ${refused.stdout}${refused.stderr}`);
    assert.match(refused.stderr, /node hostC holds it/);
    await c.manager.dockerOk(['stack', 'rm', 'shop']);
  });
});
