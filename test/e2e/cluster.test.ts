/**
 * Smoke tests of the multi-host harness (test/helpers/cluster.ts, gluster.ts) that need no multi-host
 * ferryd features: a Swarm service with a ferry volume moves from hostA to hostB (with the local pool
 * the data does NOT follow: the baseline that shared pools will fix), three hosts form a Swarm, and a
 * GlusterFS volume mounted on two hosts carries a file written by a container on one to the other.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { startCluster, sweepCluster, clusterPrerequisites, type Cluster } from '../helpers/cluster.js';
import { startGluster, glusterPrerequisites, type Gluster } from '../helpers/gluster.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const base = [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...clusterPrerequisites()];
const skip = skipUnless(base, 'multi-host tests (several private Docker engines on a LAN)');
const skipGluster = skip || skipUnless([...base, ...glusterPrerequisites()], 'GlusterFS multi-host tests');

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** After stop(): nothing of the cluster may be left on the machine. */
function assertGone(c: Pick<Cluster, 'id' | 'dir'>): void {
  const ns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`ferry-${c.id}-`)) : [];
  assert.deepEqual(ns, [], 'network namespaces left');
  assert.equal(existsSync(c.dir), false, `${c.dir} left`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(c.dir));
  assert.deepEqual(mounts, [], 'mounts left');
  const cg = readdirSync('/sys/fs/cgroup', { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => [e.name, ...(existsSync(join('/sys/fs/cgroup', e.name, 'cgroup.procs')) ? readdirSync(join('/sys/fs/cgroup', e.name)) : [])])
    .filter((n) => n.startsWith(`ferry-dh-${c.id}-`));
  assert.deepEqual(cg, [], 'cgroups left');
}

describe('Two Docker hosts in a Swarm, a ferryd (local pool) on each', { skip, timeout: 600_000 }, () => {
  let c: Cluster;
  after(async () => {
    await c?.stop();
  });

  it('brings up two hosts on a LAN, a ferryd on each, and a Swarm', async (t) => {
    const t0 = Date.now();
    c = await startCluster({ hosts: 2, name: 'swarm' });
    const up = Date.now() - t0;
    assert.deepEqual(c.hosts.map((h) => h.name), ['hostA', 'hostB']);
    for (const h of c.hosts) {
      assert.equal((await h.execOk('hostname', [])).trim(), h.name, 'own UTS namespace');
      assert.match(await h.execOk('ip', ['-o', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${h.ip.replace(/\./g, '\\.')}/24`));
    }
    // the LAN works both ways (busybox ping needs no raw socket privileges beyond root)
    const ping = await c.host('hostA').exec('busybox', ['ping', '-c', '1', '-W', '5', c.host('hostB').ip]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const t1 = Date.now();
    await Promise.all(c.hosts.map((h) => h.startFerryd()));
    const ferryds = Date.now() - t1;
    const times = await c.swarm();
    const nodes = await c.manager.dockerOk(['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.ManagerStatus}}']);
    assert.match(nodes, /^hostA Ready Leader$/m);
    assert.match(nodes, /^hostB Ready\s*$/m);
    const msg = `bring-up 2 hosts ${secs(up)}, 2 ferryds ${secs(ferryds)}, plugin activation ${secs(times.activateMs)}, swarm init ${secs(times.initMs)}, join ${secs(times.joinMs)}`;
    t.diagnostic(msg);
    console.log(`[cluster] ${msg}`);
  });

  it('moves a service with a ferry volume from hostA to hostB; with the local pool it starts there with an empty volume', async (t) => {
    const A = c.host('hostA');
    const B = c.host('hostB');
    const m = c.manager;
    await m.dockerOk([
      'service', 'create', '--detach', '--name', 'mover', '--no-resolve-image', '--stop-grace-period', '1s',
      '--hostname', '{{.Node.Hostname}}',
      '--mount', 'type=volume,source=moving-data,target=/data,volume-driver=ferry',
      '--constraint', 'node.hostname==hostA',
      'bb', 'sh', '-c', 'ls /data > /tmp/found; echo "$(hostname)" >> /data/seen; exec sleep 3600',
    ]);
    const onA = await c.waitForTask('mover', 'hostA');
    assert.equal(await A.dockerOk(['exec', onA, 'cat', '/data/seen']), 'hostA\n');
    const va = JSON.parse((await A.ferryd!.cli('volume', 'inspect', 'moving-data', '--json')).stdout);
    assert.equal(va.pool, 'local');
    assert.equal(va.mounts, 1);

    const t0 = Date.now();
    await m.dockerOk(['service', 'update', '--detach', '--constraint-rm', 'node.hostname==hostA', '--constraint-add', 'node.hostname==hostB', 'mover']);
    const onB = await c.waitForTask('mover', 'hostB');
    const moved = Date.now() - t0;
    // it RUNS on B, on a fresh (empty) volume of B's own ferryd: the data stayed on A
    assert.equal(await B.dockerOk(['exec', onB, 'cat', '/tmp/found']), '', 'the volume was empty on hostB');
    assert.equal(await B.dockerOk(['exec', onB, 'cat', '/data/seen']), 'hostB\n');
    const vb = JSON.parse((await B.ferryd!.cli('volume', 'inspect', 'moving-data', '--json')).stdout);
    assert.equal(vb.pool, 'local');
    assert.equal(vb.mounts, 1);
    // A's copy is still there, unmounted once the task on A is gone
    await waitFor(async () => JSON.parse((await A.ferryd!.cli('volume', 'inspect', 'moving-data', '--json')).stdout).mounts === 0, 'moving-data unmounted on hostA');
    assert.equal(readFileSync(join(A.ferryd!.dataDir, 'volumes', 'moving-data', 'data', 'seen'), 'utf8'), 'hostA\n');
    t.diagnostic(`service move hostA -> hostB (local driver): ${secs(moved)}`);
    console.log(`[cluster] service move hostA -> hostB (local driver): ${secs(moved)}`);
    await m.dockerOk(['service', 'rm', 'mover']);
  });

  it('tears everything down: no netns, mount, cgroup or directory left', async (t) => {
    const t0 = Date.now();
    await c.stop();
    const down = Date.now() - t0;
    assertGone(c);
    await c.stop(); // twice is fine
    t.diagnostic(`teardown 2 hosts: ${secs(down)}`);
    console.log(`[cluster] teardown 2 hosts (swarm, ferryds): ${secs(down)}`);
  });
});

describe('Three Docker hosts in a Swarm', { skip, timeout: 600_000 }, () => {
  let c: Cluster;
  after(async () => {
    await c?.stop();
  });

  it('brings up three hosts with a ferryd each, forms a Swarm, tears down', async (t) => {
    const t0 = Date.now();
    c = await startCluster({ hosts: 3, name: 'three' });
    const up = Date.now() - t0;
    await Promise.all(c.hosts.map((h) => h.startFerryd()));
    const times = await c.swarm();
    const nodes = (await c.manager.dockerOk(['node', 'ls', '--format', '{{.Hostname}} {{.Status}}'])).trim().split('\n').sort();
    assert.deepEqual(nodes, ['hostA Ready', 'hostB Ready', 'hostC Ready']);
    // ferry on hostC answers through Docker
    await c.host('hostC').dockerOk(['volume', 'create', '-d', 'ferry', 'on-c']);
    assert.match(await c.host('hostC').dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']), /^ferry on-c$/m);
    // the ferryd handle: restart keeps data dir and sockets; a killed ferryd is noticed
    const fc = c.host('hostC').ferryd!;
    const oldPid = fc.pid;
    await fc.restart();
    assert.notEqual(fc.pid, oldPid);
    assert.match((await fc.cli('volume', 'ls')).stdout, /^on-c\s+local/m);
    fc.kill('SIGKILL');
    await waitFor(async () => !fc.running, 'ferryd on hostC dead');
    assert.equal(fc.pid, -1);
    assert.equal(await fc.stop(), null);
    await fc.restart();
    assert.match(await c.host('hostC').dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']), /^ferry on-c$/m);
    // a host's engine restarts in a new mount/UTS namespace on the same LAN address; its ferryd must follow
    const C = c.host('hostC');
    await C.engine.restart();
    assert.equal((await C.execOk('hostname', [])).trim(), 'hostC');
    await C.ferryd!.restart();
    await waitFor(async () => /^hostC Ready$/m.test(await c.manager.dockerOk(['node', 'ls', '--format', '{{.Hostname}} {{.Status}}'])), 'hostC Ready after restart');
    assert.match(await C.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']), /^ferry on-c$/m);
    const t1 = Date.now();
    await c.stop();
    const down = Date.now() - t1;
    assertGone(c);
    const msg = `bring-up 3 hosts ${secs(up)}, swarm init ${secs(times.initMs)}, join ${secs(times.joinMs)}, teardown ${secs(down)}`;
    t.diagnostic(msg);
    console.log(`[cluster] ${msg}`);
  });
});

describe('Cluster clean-up after failures', { skip, timeout: 600_000 }, () => {
  it('a start that fails half-way removes what it made', async () => {
    let id = '';
    await assert.rejects(
      startCluster({ hosts: 2, name: 'fail', dockerdArgs: ['--no-such-flag'], onState: (s) => void (id = s.id) }),
      /dockerd .* exited during start-up/,
    );
    assert.notEqual(id, '');
    assertGone({ id, dir: `/tmp/ferry-cl-${id}` });
  });

  it('sweepCluster() removes a cluster from its recorded state alone, as after a crash (npm run cluster -- down)', async () => {
    const c = await startCluster({ hosts: 2, name: 'sweep' });
    try {
      await Promise.all(c.hosts.map((h) => h.startFerryd()));
      await c.swarm();
      await c.manager.dockerOk(['service', 'create', '--detach', '--name', 'idle', '--no-resolve-image', '--stop-grace-period', '1s', '--replicas', '2', 'bb', 'sleep', '3600']);
      await c.waitForTask('idle', 'hostB');
      const state = JSON.parse(JSON.stringify(c.state()));
      assert.deepEqual(await sweepCluster(state), []);
      assertGone(c);
    } finally {
      await c.stop().catch(() => undefined); // the handle's own teardown finds nothing left to do
    }
    assertGone(c);
  });
});

describe('A GlusterFS volume shared by two Docker hosts', { skip: skipGluster, timeout: 600_000 }, () => {
  let c: Cluster;
  let g: Gluster;
  const list = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
  const machineState = () => ({ lib: list('/var/lib/glusterd'), log: list('/var/log/glusterfs') });
  let atStart: ReturnType<typeof machineState> | undefined;
  after(async () => {
    await c?.stop();
  });

  it('serves gv0 on the LAN; a file written by a container on hostA is read by a container on hostB', async (t) => {
    atStart = machineState();
    c = await startCluster({ hosts: 2, name: 'gluster' });
    const t0 = Date.now();
    g = await startGluster(c);
    const glusterUp = Date.now() - t0;
    assert.equal(g.device, `${c.subnet}.254:/gv0`);
    const A = c.host('hostA');
    const B = c.host('hostB');
    const mpA = await g.mount(A);
    // on hostB, mount the way ferryd will (plain `mount -t glusterfs`, no -n, no log-file) from inside the host:
    // the client's log goes to the host's private /var/log/glusterfs, not the machine's
    const mpB = join(B.dir, 'mnt', 'plain');
    mkdirSync(mpB, { recursive: true });
    await B.execOk('mount', ['-t', 'glusterfs', g.device, mpB]);
    assert.ok(readdirSync(join(B.dir, 'private/var/log/glusterfs')).some((f) => f.endsWith('.log')), 'client log in the host');
    // the FUSE mounts exist only in the hosts' mount namespaces
    assert.ok(!readFileSync('/proc/self/mounts', 'utf8').includes(g.device), 'not mounted in the root namespace');
    assert.match(await A.execOk('cat', ['/proc/self/mounts']), new RegExp(`^${g.device.replace(/\./g, '\\.')} ${mpA} fuse.glusterfs`, 'm'));

    await A.dockerOk(['run', '--rm', '--network', 'none', '-v', `${mpA}:/x`, 'bb', 'sh', '-c', 'echo "written on $(hostname) at A" > /x/hello && sync']);
    assert.match(await B.dockerOk(['run', '--rm', '--network', 'none', '-v', `${mpB}:/x`, 'bb', 'cat', '/x/hello']), /written on .* at A/);
    assert.ok(existsSync(join(g.brick, 'hello')), 'the file is on the brick');

    // 1 GiB with fsync from a container on hostA, through the gluster mount
    const dd = await A.dockerOk(
      ['run', '--rm', '--network', 'none', '-v', `${mpA}:/x`, 'bb', 'sh', '-c',
        's=$(cut -d" " -f1 /proc/uptime); dd if=/dev/zero of=/x/big bs=1M count=1024 conv=fsync 2>/dev/null; e=$(cut -d" " -f1 /proc/uptime); ls -l /x/big; rm /x/big; echo "elapsed $s $e"'],
      { timeoutMs: 600_000 },
    );
    const m = /^\S+\s+\d+\s+\S+\s+\S+\s+(\d+) .*\n(?:.|\n)*elapsed ([\d.]+) ([\d.]+)/m.exec(dd);
    assert.ok(m, dd);
    assert.equal(Number(m[1]), 1 << 30, dd);
    const seconds = Number(m[3]) - Number(m[2]);
    const mibs = 1024 / seconds;
    await B.execOk('umount', [mpB]);
    const msg = `gluster server up + gv0 started ${secs(glusterUp)}; 1 GiB dd conv=fsync from a container on hostA: ${seconds.toFixed(2)} s, ${mibs.toFixed(0)} MiB/s`;
    t.diagnostic(msg);
    console.log(`[cluster] ${msg}`);
  });

  it('stops GlusterFS and the cluster without leaving anything (no volume in /var/lib/glusterd, no log in /var/log/glusterfs)', async () => {
    await c.stop();
    assertGone(c);
    assert.deepEqual(machineState(), atStart, 'nothing written to /var/lib/glusterd or /var/log/glusterfs');
    assert.equal(existsSync('/var/lib/glusterd/vols/gv0'), false);
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(`ferry-cl-${c.id}`));
  });
});

async function waitFor(fn: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
