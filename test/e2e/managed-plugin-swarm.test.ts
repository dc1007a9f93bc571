/**
 * The managed (v2) plugin in a Swarm of two Docker hosts with a shared pool on GlusterFS: the plugin is
 * built once and created and enabled on both hosts; each plugin's ferryd mounts the GlusterFS volume itself
 * (pool `mount:`; the plugin's rootfs holds the FUSE client, config.json gives it /dev/fuse and
 * CAP_SYS_ADMIN, `network: host` puts it on the host's LAN). A service with a ferry volume moves from
 * hostA to hostB and finds every byte. docs/managed-plugin.md ("Shared pools") says what this needs.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { startCluster, clusterPrerequisites, blobServiceArgs, type Cluster, type ClusterHost } from '../helpers/cluster.js';
import { startGluster, glusterPrerequisites, type Gluster } from '../helpers/gluster.js';
import { ROOT, runFerry, run as runCmd } from '../helpers/ferryd.js';
import { until } from '../helpers/wait.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const tools = ['strip', 'ldd'].filter((t) => !['/usr/bin', '/bin'].some((d) => existsSync(join(d, t))));
const skip = skipUnless(
  [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...clusterPrerequisites(), ...glusterPrerequisites(), ...tools.map((t) => `${t} (to build the plugin)`)],
  'managed plugin in a Swarm on a GlusterFS shared pool',
);

describe('the managed plugin on two Swarm hosts with a GlusterFS shared pool', { skip, timeout: 600_000 }, () => {
  let c: Cluster;
  let g: Gluster;
  let A: ClusterHost;
  let B: ClusterHost;
  const stateOf = (h: ClusterHost) => join(h.dir, 'state'); // the plugin's state mount on this host
  const cli = (h: ClusterHost, ...args: string[]) => runFerry(['--plugin', join(stateOf(h), 'ferry'), ...args]);
  const cliJson = async (h: ClusterHost, ...args: string[]) => {
    const r = await cli(h, '--json', ...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')} on ${h.name}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    c = await startCluster({ hosts: 2, name: 'mpswarm' });
    [A, B] = c.hosts as [ClusterHost, ClusterHost];
    const pluginDir = join(c.dir, 'plugin');
    const [built, gl] = await Promise.all([runCmd(process.execPath, [join(ROOT, 'dist/tools/plugin-build.js'), '--out', pluginDir]), startGluster(c)]);
    assert.equal(built.code, 0, built.stderr);
    g = gl;
    for (const h of c.hosts) {
      // the plugin's config file: STATE/ferry/ferry.yaml on the host, read when the plugin is enabled
      await mkdir(join(stateOf(h), 'ferry'), { recursive: true });
      await writeFile(
        join(stateOf(h), 'ferry', 'ferry.yaml'),
        [
          'heartbeatInterval: 500ms',
          'nodeTimeout: 3s',
          'defaultPool: nas',
          'pools:',
          '  nas:',
          '    path: /mnt/gv0', // inside the plugin: its own mount namespace holds the FUSE mount
          '    shared: true',
          `    mount: { type: glusterfs, device: "${g.device}" }`,
          // the other way: the host mounts the share under its /mnt, the plugin sees it through host-mnt
          '  hostnas:',
          '    path: /host/mnt/gv0/hostnas',
          '    shared: true',
          '',
        ].join('\n'),
      );
      // in the host's mount namespace, before the plugin starts: these test hosts' namespaces are private,
      // so only a mount that exists when the plugin's rbind is made is seen in it (docs/managed-plugin.md)
      await g.mount(h, join(h.dir, 'mnt', 'gv0'));
      await h.execOk('mkdir', ['-p', join(h.dir, 'mnt', 'gv0', 'hostnas')]); // a pool without mount: is not made by ferryd
      await h.dockerOk(['plugin', 'create', 'ferry', pluginDir], { timeoutMs: 180_000 });
      await h.dockerOk(['plugin', 'set', 'ferry', `state.source=${stateOf(h)}`, `host-run.source=${h.dir}`, `host-mnt.source=${join(h.dir, 'mnt')}`, `FERRY_NODE=${h.name}`]);
    }
    // one after the other: two plugins starting at once on 2 cores only slow each other down
    for (const h of c.hosts) await h.dockerOk(['plugin', 'enable', 'ferry'], { timeoutMs: 120_000 });
    await c.swarm();
  });
  after(async () => {
    // the plugins go with their engines (c.stop): their FUSE clients, in the hosts' network namespaces, too
    await c?.stop();
  });

  it('each plugin mounted GlusterFS inside itself; both nodes are alive in the shared pool', async () => {
    for (const h of c.hosts) {
      const st = await cliJson(h, 'status');
      assert.equal(st.runsAs, 'managed-plugin');
      assert.equal(st.node, h.name);
    }
    await until('both nodes in the heartbeats', async () => ((await cliJson(B, 'status')).cluster?.nodes ?? []).filter((n: { alive: boolean }) => n.alive).length === 2, 30_000);
    for (const h of c.hosts) {
      const st = await cli(h, 'status');
      assert.match(st.stdout, /^nas\s+dir shared\s+ok\s/m, `${h.name}: ${st.stdout}`);
      assert.match(st.stdout, /^hostnas\s+dir shared\s+ok\s/m, `${h.name}: ${st.stdout}`);
    }
    // the host has its own mount (hostnas); the plugin's (nas) is not in the host's mount table
    assert.deepEqual((await A.execOk('cat', ['/proc/self/mounts'])).split('\n').filter((l) => / fuse\.glusterfs /.test(l)).map((l) => l.split(' ')[1]), [join(A.dir, 'mnt', 'gv0')]);
  });

  it('a service with a ferry volume on the shared pool moves from hostA to hostB and keeps every byte', async () => {
    await c.manager.dockerOk(blobServiceArgs('db', 'dbdata', 'hostA'));
    const onA = await c.waitForTask('db', 'hostA');
    await until('the writer on hostA', async () => (await A.docker(['exec', onA, 'cat', '/data/seen'])).stdout === 'started\n', 60_000);
    const sumOnA = await A.dockerOk(['exec', onA, 'cat', '/data/blob.sum']);
    assert.equal(JSON.parse(await A.dockerOk(['volume', 'inspect', 'dbdata']))[0].Driver, 'ferry:latest');
    await c.manager.dockerOk(['service', 'update', '--detach', '--constraint-rm', 'node.hostname==hostA', '--constraint-add', 'node.hostname==hostB', 'db']);
    const onB = await c.waitForTask('db', 'hostB');
    assert.equal(await B.dockerOk(['exec', onB, 'cat', '/data/blob.sum']), sumOnA);
    assert.match(await B.dockerOk(['exec', onB, 'sha256sum', '-c', '/data/blob.sum']), /blob: OK/);
    await until('the second start in /data/seen', async () => (await B.dockerOk(['exec', onB, 'cat', '/data/seen'])) === 'started\nstarted\n');
    // the bytes are on the GlusterFS brick, read here from outside both hosts
    assert.equal((await cliJson(B, 'volume', 'inspect', 'dbdata')).pool, 'nas');
    const onBrick = createHash('sha256').update(await readFile(join(g.brick, 'volumes/dbdata/data/blob'))).digest('hex');
    assert.equal(`${onBrick}  /data/blob\n`, sumOnA);
    await until('the attachment to follow the task', async () => {
      const x = await cliJson(A, 'volume', 'inspect', 'dbdata');
      return x.attachments.length === 1 && x.attachments[0].node === 'hostB';
    }, 30_000);
    await c.manager.dockerOk(['service', 'rm', 'db']);
  });

  it('a pool on a share the host mounted: written on hostA, read on hostB; a container keeps its files while the plugin is disabled', async () => {
    await A.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=hostnas', 'hostvol']);
    await A.dockerOk(['run', '--rm', '--network', 'none', '-v', 'hostvol:/v', 'bb', 'sh', '-c', 'dd if=/dev/urandom of=/v/blob bs=1M count=4 2>/dev/null && sha256sum /v/blob > /v/blob.sum && sync']);
    // hostB's ferryd learns the pool's catalog at its next heartbeat
    await until('hostB knows hostvol', async () => (await cli(B, '--json', 'volume', 'inspect', 'hostvol')).code === 0, 30_000);
    assert.equal((await cliJson(B, 'volume', 'inspect', 'hostvol')).pool, 'hostnas');
    // (plain -v hostvol:/v would make a `local` volume: Docker on hostB has not heard of hostvol yet)
    await B.dockerOk(['run', '-d', '--name', 'reader', '--network', 'none', '--mount', 'type=volume,source=hostvol,target=/v,volume-driver=ferry', 'bb', 'sleep', '600']);
    assert.match(await B.dockerOk(['exec', 'reader', 'sha256sum', '-c', '/v/blob.sum']), /blob: OK/);
    // the share is the host's, not a process of the plugin: the container keeps it while ferryd is away
    await B.dockerOk(['plugin', 'disable', '-f', 'ferry']);
    try {
      assert.match(await B.dockerOk(['exec', 'reader', 'sha256sum', '-c', '/v/blob.sum']), /blob: OK/);
    } finally {
      await B.dockerOk(['plugin', 'enable', 'ferry'], { timeoutMs: 120_000 });
    }
    // the bytes are on the brick, under the pool's directory
    assert.equal(`${createHash('sha256').update(await readFile(join(g.brick, 'hostnas/volumes/hostvol/data/blob'))).digest('hex')}  /v/blob\n`, await B.dockerOk(['exec', 'reader', 'cat', '/v/blob.sum']));
    await B.dockerOk(['rm', '-f', 'reader']);
    await until('the reader unmounted', async () => (await cliJson(B, 'volume', 'inspect', 'hostvol')).mounts === 0, 30_000);
  });
});
