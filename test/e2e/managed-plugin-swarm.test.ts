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
import { startCluster, clusterPrerequisites, type Cluster, type ClusterHost } from '../helpers/cluster.js';
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
          '',
        ].join('\n'),
      );
      await h.dockerOk(['plugin', 'create', 'ferry', pluginDir], { timeoutMs: 180_000 });
      await h.dockerOk(['plugin', 'set', 'ferry', `state.source=${stateOf(h)}`, `host-run.source=${h.dir}`, `FERRY_NODE=${h.name}`]);
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
    const st = await cli(A, 'status');
    assert.match(st.stdout, /^nas\s+dir shared\s+ok\s/m);
    // the FUSE mount is the plugin's, not the host's
    assert.doesNotMatch(await A.execOk('cat', ['/proc/self/mounts']), /fuse\.glusterfs/);
  });

  it('a service with a ferry volume on the shared pool moves from hostA to hostB and keeps every byte', async () => {
    await c.manager.dockerOk([
      'service', 'create', '--detach', '--name', 'db', '--no-resolve-image', '--stop-grace-period', '1s',
      '--mount', 'type=volume,source=dbdata,target=/data,volume-driver=ferry',
      '--constraint', 'node.hostname==hostA',
      'bb', 'sh', '-c', '[ -f /data/blob ] || { dd if=/dev/urandom of=/data/blob bs=1M count=16 2>/dev/null; sha256sum /data/blob > /data/blob.sum; sync; }; echo started >> /data/seen; exec sleep 3600',
    ]);
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
});
