// Issue 12 item 3, the cut-off case: the rwo holder's link to the LAN goes down while its container writes to GlusterFS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { startCluster, clusterPrerequisites, type Cluster, type ClusterHost } from '../helpers/cluster.js';
import { startGluster, glusterPrerequisites, glusterPoolConfig, type Gluster } from '../helpers/gluster.js';
import { FERRY_BIN, run } from '../helpers/ferryd.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';
import { readFenceLog } from '../../src/fence/agent.js';
import type { Status } from '../../src/wire/types.js';

const skip = skipUnless(
  [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...clusterPrerequisites(), ...glusterPrerequisites()],
  'a holder cut off from the LAN (GlusterFS, two Docker hosts)',
);

const HEARTBEAT_MS = 300;
const FENCE_MS = 2500;
const NODE_TIMEOUT_MS = 4000;

/**
 * Two Docker hosts on a LAN and a GlusterFS server on it; each ferryd mounts the volume itself. hostA holds an
 * rwo volume, its container stamps a sequence number and the time into it. hostA's link goes down (`ip link set
 * eth0 down` in its network namespace): it loses the share and the other host, but its container lives on. A's
 * fencing agent (which needs neither the share nor the LAN) kills the writer before A's fence deadline; B takes
 * the volume over after nodeTimeout. Then A's link comes back: nothing of A's lands after B began (not even the
 * write that was in flight when the link went: the killed writer cannot exit until GlusterFS answers, so the
 * agent aborts A's FUSE connection and closes the GlusterFS client's TCP connections, whose send queues hold
 * the write its close flushed; ferryd mounts the share again), A does not take the volume back, and it says
 * who holds it. The writer writes without pause, so that the cut finds a write in flight; before the stamps
 * are read, the test waits until no socket of A still holds bytes to send (the kernel sends them at its next
 * retransmission, seconds after the link is back), so a write that would land has landed.
 */
/**
 * Two Docker hosts on a LAN with a GlusterFS server, a ferryd on each mounting the share itself. GlusterFS's
 * default network.ping-timeout (42 s) is kept: a cut-off client holds its calls in flight that long.
 */
async function twoHostsOnGluster(name: string): Promise<{ c: Cluster; A: ClusterHost; B: ClusterHost }> {
  const c = await startCluster({ hosts: 2, name });
  try {
    const g: Gluster = await startGluster(c);
    const timing = [`heartbeatInterval: ${HEARTBEAT_MS}ms`, `nodeTimeout: ${NODE_TIMEOUT_MS}ms`, `fenceDeadline: ${FENCE_MS}ms`];
    await Promise.all(c.hosts.map((h) => h.startFerryd({ configYaml: glusterPoolConfig(h.name, join(c.dir, 'nas'), g, timing) })));
  } catch (err) {
    await c.stop();
    throw err;
  }
  const [A, B] = c.hosts as [ClusterHost, ClusterHost];
  return { c, A, B };
}

/**
 * `busy`: the writer writes without pause, so the cut finds a write in flight and the killed writer is stuck on
 * it. `idle`: the writer has stopped writing before the cut and is killed at once; what the GlusterFS client
 * still sends (ferryd's heartbeats, here) waits unacknowledged in its connections, and the agent aborts for that.
 */
for (const kind of ['busy', 'idle'] as const) {
  describe(`a holder cut off from the LAN while its container ${kind === 'busy' ? 'writes' : 'idles'} (GlusterFS)`, { skip, timeout: 600_000 }, () => {
    let c: Cluster;
    let A: ClusterHost;
    let B: ClusterHost;
    let agent: ChildProcess | undefined;
    const link = (h: ClusterHost, state: 'up' | 'down') => run('ip', ['-n', basename(h.netns), 'link', 'set', 'eth0', state]);

    before(async () => {
      ({ c, A, B } = await twoHostsOnGluster(`cutoff${kind}`));
    });
    after(async () => {
      agent?.kill('SIGKILL');
      if (A) await link(A, 'up');
      await c?.stop();
    });

    it('A\'s writer dies before A\'s fence deadline; B takes over; when the link is back nothing of A lands and A says B holds it', async (t) => {
      // one kernel plays both hosts here: A's agent must not see B's containers (on real hosts it sees only its own)
      agent = spawn(FERRY_BIN, ['fence', '--data-dir', A.ferryd!.dataDir, '--cgroup-prefix', A.engine.cgroupParent], { stdio: ['ignore', 'ignore', 'inherit'] });
      await A.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', 'db']);
      const stampLoop = (who: string) => `i=0; while :; do i=$((i+1)); echo "${who} $i $(cut -d' ' -f1 /proc/uptime)" >> /data/stamps; done`;
      const stamp30 = `i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo "A $i $(cut -d' ' -f1 /proc/uptime)" >> /data/stamps; done; exec sleep 100000`;
      await A.dockerOk(['run', '-d', '--name', 'w-a', '--network', 'none', '-v', 'db:/data', 'bb', 'sh', '-c', kind === 'busy' ? stampLoop('A') : stamp30]);
      const stamps = join(c.dir, 'nas', 'volumes', 'db', 'data', 'stamps');
      const read = async (h: ClusterHost) => (await h.exec('cat', [stamps])).stdout;
      await until('A stamps', async () => (await read(B)).includes(kind === 'busy' ? 'A 20 ' : 'A 30 '), 20_000);

      const cut = Date.now();
      assert.equal((await link(A, 'down')).code, 0);
      // (the abort is in the record of the kill, or, found at a later look, in one of its own)
      const aborted = await until('A\'s writer is fenced and the share aborted', async () => readFenceLog(A.ferryd!.dataDir).find((r) => r.fuseAbort), 15_000).catch((err) => {
        throw new Error(`${String(err)}: ${JSON.stringify(readFenceLog(A.ferryd!.dataDir))}`);
      });
      const fence = readFenceLog(A.ferryd!.dataDir)[0]!;
      if (kind === 'busy') {
        // the writer was blocked in a write to the unreachable share: killed, it could not exit until the abort
        assert.ok((fence.stuck ?? []).length > 0, `a killed writer stuck on the share: ${JSON.stringify(fence)}`);
      } else {
        // the idle writer exited at once; the client's connections held bytes the share did not acknowledge
        assert.equal(fence.stuck, undefined, `no killed writer stuck: ${JSON.stringify(fence)}`);
        assert.match(aborted.unanswered ?? '', /^[1-9][0-9]* byte\(s\) sent to \S+ and not acknowledged$/);
      }
      assert.match(aborted.fuseAbort ?? '', /^aborted FUSE connection/);
      assert.match(aborted.connectionsClosed ?? '', /^killed its server and closed [1-9][0-9]* TCP connection\(s\)/);
      const lastBeat = Date.parse(fence.renewedAt);
      const deadline = lastBeat + FENCE_MS;
      const up = Number((await run('cut', ['-d', ' ', '-f1', '/proc/uptime'])).stdout);
      const deadlineUp = up - (Date.now() - deadline) / 1000;

      await sleep(Math.max(0, lastBeat + NODE_TIMEOUT_MS + 300 - Date.now()));
      const t1 = Date.now();
      await B.dockerOk(['run', '-d', '--name', 'w-b', '--network', 'none', '-v', 'db:/data', 'bb', 'sh', '-c', stampLoop('B')]);
      const runB = Date.now() - t1;
      await until('B stamps', async () => (await read(B)).includes('B 20 '), 20_000);
      assert.equal((await link(A, 'up')).code, 0);
      const back = Date.now();
      // A beats again; it learns that B holds db now
      const fenced = async () => (JSON.parse((await A.ferryd!.cli('--json', 'status')).stdout) as Status).warnings.find((w) => w.code === 'fenced');
      await until('A warns that it was fenced and B holds db', async () => /held by node hostB/.test((await fenced())?.message ?? ''), 30_000).catch(async (err) => {
        throw new Error(`${String(err)}; A's ferryd log ends:\n${(await A.ferryd!.logs()).split('\n').slice(-40).join('\n')}`);
      });
      await until('B goes on stamping after the link came back', async () => (await read(B)).includes('B 100 '), 30_000);
      // A's container stays dead, and A is refused the volume while B holds it
      assert.doesNotMatch(await A.dockerOk(['inspect', '-f', '{{.State.Status}}', 'w-a']), /running/);
      const refused = await A.docker(['run', '--rm', '--network', 'none', '-v', 'db:/data', 'bb', 'true']);
      assert.notEqual(refused.code, 0, 'A must not mount db while B holds it');
      assert.match(refused.stderr, /volume db is rwo .* node hostB holds it/);
      // a write A's kernel still queues would land at its next retransmission: wait until none is queued
      const queued = async () =>
        (await run('ip', ['netns', 'exec', basename(A.netns), 'ss', '-H', '-t', '-n', 'state', 'all']).then((r) => r.stdout))
          .split('\n')
          .filter((l) => Number(l.trim().split(/\s+/)[2] ?? 0) > 0);
      await until('no socket of A holds bytes to send', async () => (await queued()).length === 0, 90_000).catch(async (err) => {
        throw new Error(`${String(err)}: ${(await queued()).join(' | ')}`);
      });
      await B.dockerOk(['rm', '-f', 'w-b']);

      const lines = (await read(B)).split('\n').filter((l) => /^[AB] [0-9]+ [0-9]+\.[0-9]+$/.test(l));
      const parsed = lines.map((l) => {
        const [who, seq, at] = l.split(' ');
        return { who: who!, seq: Number(seq), at: Number(at) };
      });
      const firstB = parsed.findIndex((s) => s.who === 'B');
      const fromA = parsed.filter((s) => s.who === 'A');
      const fromB = parsed.filter((s) => s.who === 'B');
      assert.deepEqual(parsed.slice(firstB).filter((s) => s.who === 'A').map((s) => s.seq), [], 'stamps of A written after B began');
      assert.deepEqual(fromA.filter((s) => s.at > deadlineUp).map((s) => s.seq), [], 'stamps of A dated after its fence deadline');
      assert.deepEqual(fromB.map((s) => s.seq), fromB.map((_s, i) => i + 1), 'B\'s stamps are all there, in order');
      assert.deepEqual(fromA.map((s) => s.seq), fromA.map((_s, i) => i + 1), 'A\'s stamps up to the cut are all there, in order');
      t.diagnostic(
        `cut-off, ${kind} writer (GlusterFS ping-timeout 42 s; ${aborted.unanswered ? `${aborted.unanswered}; ` : ''}${aborted.fuseAbort}; ${aborted.connectionsClosed}): A wrote ${fromA.length} stamps, the last ${((deadlineUp - Math.max(...fromA.map((s) => s.at))) * 1000).toFixed(0)} ms before its fence deadline; the agent killed ${fence.pids.length} process(es) ` +
          `${fence.at ? `${Date.parse(fence.at) - cut} ms after the cut` : ''}; B wrote ${fromB.length}, docker run on B took ${runB} ms; A warned of B ${Date.now() - back} ms or less after the link came back`,
      );
    });
  });
}

/**
 * The other side of the abort: a holder whose ferryd dies while the share stays reachable. The agent kills the
 * rwo writer, but nothing waits unacknowledged on the share's connections, so it must not abort the mount:
 * the node's other containers, on rwx volumes of the same pool, go on writing to the share.
 */
describe('a holder whose ferryd dies while GlusterFS stays reachable', { skip, timeout: 600_000 }, () => {
  let c: Cluster;
  let A: ClusterHost;
  let B: ClusterHost;
  let agent: ChildProcess | undefined;

  before(async () => {
    ({ c, A, B } = await twoHostsOnGluster('cutoffok'));
  });
  after(async () => {
    agent?.kill('SIGKILL');
    await c?.stop();
  });

  it('the rwo writer is killed, the share is not aborted, and a container on an rwx volume goes on writing', async (t) => {
    agent = spawn(FERRY_BIN, ['fence', '--data-dir', A.ferryd!.dataDir, '--cgroup-prefix', A.engine.cgroupParent], { stdio: ['ignore', 'ignore', 'inherit'] });
    await A.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', 'db']);
    await A.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwx', 'logs']);
    await A.dockerOk(['run', '-d', '--name', 'w-a', '--network', 'none', '-v', 'db:/data', 'bb', 'sh', '-c', 'echo A > /data/stamps; exec sleep 100000']);
    await A.dockerOk(['run', '-d', '--name', 'w-x', '--network', 'none', '-v', 'logs:/data', 'bb', 'sh', '-c', 'i=0; while :; do i=$((i+1)); echo "x $i" >> /data/log; sleep 0.05; done']);
    const log = join(c.dir, 'nas', 'volumes', 'logs', 'data', 'log');
    const lines = async () => (await B.exec('cat', [log])).stdout.split('\n').filter((l) => /^x [0-9]+$/.test(l)).length;
    await until('w-x writes', async () => (await lines()) > 10, 20_000);

    A.ferryd!.kill('SIGKILL');
    await until('A\'s rwo writer is fenced', async () => readFenceLog(A.ferryd!.dataDir).length > 0, 15_000);
    // the agent looks again once a second: give it several looks
    await sleep(3500);
    const records = readFenceLog(A.ferryd!.dataDir);
    assert.deepEqual(records.filter((r) => r.fuseAbort || r.connectionsClosed || r.unanswered), [], `no abort of a share that answers: ${JSON.stringify(records)}`);
    assert.doesNotMatch(await A.dockerOk(['inspect', '-f', '{{.State.Status}}', 'w-a']), /running/);
    assert.match(await A.dockerOk(['inspect', '-f', '{{.State.Status}}', 'w-x']), /running/);
    const before = await lines();
    await sleep(1000);
    const after = await lines();
    assert.ok(after > before, `the rwx container goes on writing to the share: ${before} lines, then ${after} a second later`);
    t.diagnostic(`ferryd killed on A: the agent killed ${records[0]!.pids.length} process(es), no abort after ${records.length} record(s) and 3.5 s of looks; w-x wrote ${after - before} lines in the next second`);
  });
});

