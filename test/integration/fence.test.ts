import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FERRY_BIN } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';
import { writeLease, type FenceLease } from '../../src/fence/lease.js';
import { locate } from '../../src/fence/mountinfo.js';
import { readFenceLog } from '../../src/fence/agent.js';

/**
 * The fencing agent (`ferry fence`) against real writers: processes in mount namespaces of their own that
 * have an rwo volume's directory bind-mounted (as a container has) and stamp a sequence number and the time
 * (date +%s%N) into it. The test plays ferryd: it renews the local lease every 100 ms, then stops (ferryd and
 * dockerd killed: nothing renews it, the writer is not a child of either). The agent must kill the writer
 * before the fence deadline; a second writer (the new holder) starts nodeTimeout after the last renewal.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount and unshare'], 'fencing agent');

const FENCE_MS = 1500;
const NODE_TIMEOUT_MS = 3000;
const HEARTBEAT_MS = 100;

interface Stamp {
  who: string;
  seq: number;
  ns: bigint;
}

const parseStamps = (text: string): Stamp[] =>
  text
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      const [who, seq, ns] = l.split(' ');
      // a line cut by the kill is not a write that happened
      return who && seq && ns && /^[0-9]{19}$/.test(ns) ? [{ who, seq: Number(seq), ns: BigInt(ns) }] : [];
    });

describe('fencing agent: the old holder\'s writers die before the fence deadline', { skip }, () => {
  let base: string;
  let share: string;
  let vol: string;
  let dataDir: string;
  let agent: ChildProcess | undefined;
  const writers: ChildProcess[] = [];

  /** A writer: its own mount namespace, the volume bind-mounted at MNT, a stamp every 20 ms. */
  const startWriter = async (who: string): Promise<ChildProcess> => {
    const mnt = join(base, `mnt-${who}`);
    await mkdir(mnt, { recursive: true });
    const script = `mount --bind ${vol} ${mnt} && cd / && i=0; while :; do i=$((i+1)); echo "${who} $i $(date +%s%N)" >> ${mnt}/stamps; sleep 0.02; done`;
    const p = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: 'ignore' });
    writers.push(p);
    await until(`writer ${who} stamps`, async () => (await readFile(join(vol, 'stamps'), 'utf8').catch(() => '')).includes(`${who} 2 `), 5000);
    return p;
  };

  const lease = (renewedAt: number, held: boolean, acked: string[] = []): FenceLease & { acked: string[] } => {
    const where = locate(vol, execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }))!;
    return {
      node: 'a',
      pid: process.pid,
      fenceMs: FENCE_MS,
      heartbeatMs: HEARTBEAT_MS,
      writtenAt: Date.now(),
      pools: { nas: { renewedAt, deadline: renewedAt + FENCE_MS } },
      held: held ? [{ pool: 'nas', volume: 'pg', path: vol, ...where }] : [],
      acked,
    };
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-fence-'));
    share = join(base, 'share');
    dataDir = join(base, 'data');
    await mkdir(share);
    // a filesystem of its own: the agent matches mounts by its device and the directory's root in it
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', share]);
    vol = join(share, 'volumes', 'pg', 'data');
    await mkdir(vol, { recursive: true });
  });

  after(async () => {
    agent?.kill('SIGKILL');
    for (const w of writers) w.kill('SIGKILL');
    await sleep(100);
    execFileSync('umount', ['-l', share]);
    await rm(base, { recursive: true, force: true });
  });

  it('kills a writer whose lease ran out, before its deadline; the next holder\'s stamps are intact and never overlap', async () => {
    let renewedAt = Date.now();
    await writeLease(dataDir, lease(renewedAt, true));
    agent = spawn(FERRY_BIN, ['fence', '--data-dir', dataDir, '--poll', '50'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const a = await startWriter('A');
    let aExit: number | undefined;
    a.once('exit', () => (aExit = Date.now()));
    // ferryd beats: the lease is renewed and the writer lives on
    for (let i = 0; i < 20; i++) {
      renewedAt = Date.now();
      await writeLease(dataDir, lease(renewedAt, true));
      await sleep(HEARTBEAT_MS);
    }
    assert.equal(aExit, undefined, 'a writer whose lease is renewed is left alone');
    // ferryd (and dockerd) killed: nothing renews the lease any more
    const deadline = renewedAt + FENCE_MS;
    await until('the old holder\'s writer is killed', async () => aExit !== undefined, 10_000);
    assert.ok(aExit! <= deadline, `killed ${aExit! - deadline} ms after the fence deadline`);
    const fences = readFenceLog(dataDir);
    assert.equal(fences.length, 1);
    assert.equal(fences[0]!.volume, 'pg');
    assert.ok(fences[0]!.pids.length >= 1, 'the record names the killed processes');

    // the new holder takes over nodeTimeout after the last heartbeat; A's ferryd, back, has acknowledged the fence
    await sleep(Math.max(0, renewedAt + NODE_TIMEOUT_MS - Date.now()));
    await writeLease(dataDir, { ...lease(Date.now(), false, [fences[0]!.id]) });
    await sleep(200);
    const b = await startWriter('B');
    await sleep(500);
    assert.equal(b.exitCode, null, 'the new holder is not fenced');
    b.kill('SIGKILL');
    await new Promise((r) => b.once('exit', r));

    const stamps = parseStamps(await readFile(join(vol, 'stamps'), 'utf8'));
    const fromA = stamps.filter((s) => s.who === 'A');
    const fromB = stamps.filter((s) => s.who === 'B');
    const deadlineNs = BigInt(deadline) * 1_000_000n;
    assert.equal(fromA.filter((s) => s.ns > deadlineNs).length, 0, 'no write from the old holder after its fence deadline');
    const lastA = fromA.reduce((m, s) => (s.ns > m ? s.ns : m), 0n);
    assert.ok(fromB.every((s) => s.ns > lastA), 'the two writers never overlapped in time');
    assert.deepEqual(fromB.map((s) => s.seq), fromB.map((_s, i) => i + 1), 'the new holder\'s stamps are all there, in order');
    const tail = stamps.slice(stamps.findIndex((s) => s.who === 'B'));
    assert.ok(tail.every((s) => s.who === 'B'), 'nothing of A after B started');
    process.stderr.write(`fence: A wrote ${fromA.length} stamps, killed ${deadline - aExit!} ms before its fence deadline; B wrote ${fromB.length}\n`);
  });
});
