import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { FERRY_BIN } from '../helpers/ferryd.js';
import { makeSharedDir, startSharedNode, stopSharedNodes, type SharedNode } from '../helpers/shared-node.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';
import { readFenceLog } from '../../src/fence/agent.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'fencing under two real Docker engines');

const HEARTBEAT_MS = 200;
const FENCE_MS = 1500;
const NODE_TIMEOUT_MS = 3000;

/** Seconds since boot (/proc/uptime): one clock for the host and its containers (busybox date has no %N). */
const uptime = async () => Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);

/**
 * The split brain of issue 12: the rwo holder's dockerd and ferryd are killed with -9; its container goes on
 * writing (containerd-shim outlives dockerd). Host A's fencing agent (`ferry fence`, a process of its own)
 * must kill it before A's fence deadline; B takes the volume over after nodeTimeout. The writer stamps a
 * sequence number and the time into the volume: no stamp of A is later than its deadline, B's are intact.
 */
describe('fencing under two Docker engines: kill -9 of the holder\'s dockerd and ferryd', { skip }, () => {
  let base: string;
  const hosts: Record<'A' | 'B', SharedNode> = {} as never;
  let agent: ChildProcess | undefined;

  const node = async (n: 'A' | 'B', pool: string) => {
    hosts[n] = await startSharedNode({ base, pool, name: n, label: 'fence', heartbeatMs: HEARTBEAT_MS, nodeTimeoutMs: NODE_TIMEOUT_MS, fenceMs: FENCE_MS });
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-e2e-fence-'));
    const pool = await makeSharedDir(join(base, 'nas'));
    await Promise.all([node('A', pool), node('B', pool)]);
  });
  after(async () => {
    agent?.kill('SIGKILL');
    await stopSharedNodes([hosts.A, hosts.B]);
    await rm(base, { recursive: true, force: true });
  });

  it('A\'s writer is killed before A\'s fence deadline; B takes over after nodeTimeout; the writers never overlap', async () => {
    const A = hosts.A;
    const B = hosts.B;
    // one kernel plays both hosts here: A's agent must not see B's containers (on real hosts it sees only its own)
    agent = spawn(FERRY_BIN, ['fence', '--data-dir', A.f.dataDir, '--cgroup-prefix', A.h.cgroupParent], { stdio: ['ignore', 'ignore', 'inherit'] });
    await A.h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', 'pg']);
    const stampLoop = (who: string) => `i=0; while :; do i=$((i+1)); echo "${who} $i $(cut -d' ' -f1 /proc/uptime)" >> /data/stamps; sleep 0.02; done`;
    const t0 = Date.now();
    await A.h.dockerOk(['run', '-d', '--name', 'pg-a', '--network', 'none', '-v', 'pg:/data', 'bb', 'sh', '-c', stampLoop('A')]);
    const runA = Date.now() - t0;
    const stamps = join(base, 'nas', 'volumes', 'pg', 'data', 'stamps');
    await until('A stamps', async () => (await readFile(stamps, 'utf8').catch(() => '')).includes('A 10 '), 10_000);
    await sleep(1000);
    assert.equal(readFenceLog(A.f.dataDir).length, 0, 'a holder that beats is not fenced');

    // kill -9 of A's ferryd and dockerd: the container lives on under its shim
    await A.f.crash();
    process.kill(A.h.pid, 'SIGKILL');
    await until('A\'s writer is fenced', async () => readFenceLog(A.f.dataDir).length > 0, 10_000);
    const lastBeat = Date.parse(JSON.parse(await readFile(await findBeat(base), 'utf8')).lastSeen);
    const deadline = lastBeat + FENCE_MS;
    // the deadline on the containers' clock
    const deadlineUp = (await uptime()) - (Date.now() - deadline) / 1000;

    await sleep(Math.max(0, lastBeat + NODE_TIMEOUT_MS + 300 - Date.now()));
    const t1 = Date.now();
    await B.h.dockerOk(['run', '-d', '--name', 'pg-b', '--network', 'none', '-v', 'pg:/data', 'bb', 'sh', '-c', stampLoop('B')]);
    const runB = Date.now() - t1;
    await until('B stamps', async () => (await readFile(stamps, 'utf8').catch(() => '')).includes('B 20 '), 10_000);
    await B.h.dockerOk(['rm', '-f', 'pg-b']);

    const lines = (await readFile(stamps, 'utf8')).split('\n').filter((l) => /^[AB] [0-9]+ [0-9]+\.[0-9]+$/.test(l));
    const parsed = lines.map((l) => {
      const [who, seq, t] = l.split(' ');
      return { who: who!, seq: Number(seq), t: Number(t) };
    });
    const fromA = parsed.filter((s) => s.who === 'A');
    const fromB = parsed.filter((s) => s.who === 'B');
    const late = fromA.filter((s) => s.t > deadlineUp);
    assert.equal(late.length, 0, `writes of A after its fence deadline: ${late.map((s) => s.seq).join(',')}`);
    const lastA = Math.max(...fromA.map((s) => s.t));
    assert.ok(fromB.every((s) => s.t >= lastA), 'the two writers never overlapped in time');
    assert.deepEqual(fromB.map((s) => s.seq), fromB.map((_s, i) => i + 1), 'B\'s stamps are all there, in order');
    const fence = readFenceLog(A.f.dataDir)[0]!;
    process.stderr.write(
      `fence-e2e: A wrote ${fromA.length} stamps, last ${((deadlineUp - lastA) * 1000).toFixed(0)} ms before its fence deadline; killed ${fence.pids.length} process(es) at ${fence.at}; B wrote ${fromB.length}; docker run took ${runA} ms on A, ${runB} ms on B\n`,
    );
  });
});

async function findBeat(base: string): Promise<string> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('find', [join(base, 'nas'), '-path', '*/nodes/nodeA.json'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  assert.ok(out[0], 'the heartbeat of nodeA');
  return out[0]!;
}
