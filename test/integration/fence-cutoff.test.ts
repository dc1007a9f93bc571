import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FERRY_BIN } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';
import { Cluster } from '../../src/cluster/cluster.js';
import { DirPool } from '../../src/pools/dir.js';
import { StateWarnings } from '../../src/util/state-warnings.js';
import { readFenceLog } from '../../src/fence/agent.js';
import { loadConfig } from '../../src/daemon/config.js';

/**
 * A holder cut off from the share while its writer runs. Two nodes' ferryd (Cluster, in this process) see
 * one share (a tmpfs) through mounts of their own; node A's fencing agent runs as `ferry fence`. The cut:
 * A's mount of the share goes away (umount -l), so A's heartbeats fail, while A's writer, which has the
 * volume bind-mounted in its own mount namespace, keeps writing (the worst case: a share that still takes
 * its writes). The agent kills it before A's fence deadline; B takes over after nodeTimeout; when the
 * share comes back A does not take the volume back and says which node holds it.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount and unshare'], 'fencing a cut-off holder');

const HEARTBEAT_MS = 200;
const FENCE_MS = 1500;
const NODE_TIMEOUT_MS = 3000;

describe('fencing: a holder cut off from the share', { skip }, () => {
  let base: string;
  let share: string;
  const clusters: Cluster[] = [];
  let agent: ChildProcess | undefined;
  let writer: ChildProcess | undefined;
  const log = pino({ level: 'silent' });

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-fence-cut-'));
    share = join(base, 'server');
    await mkdir(share);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', share]);
    for (const n of ['a', 'b']) {
      await mkdir(join(base, n, 'nas'), { recursive: true });
      execFileSync('mount', ['--bind', share, join(base, n, 'nas')]);
    }
  });

  after(async () => {
    for (const c of clusters) await c.stop().catch(() => undefined);
    agent?.kill('SIGKILL');
    writer?.kill('SIGKILL');
    await sleep(100);
    for (const n of ['a', 'b']) {
      try {
        execFileSync('umount', ['-l', join(base, n, 'nas')], { stdio: 'ignore' });
      } catch {
        // already cut
      }
    }
    execFileSync('umount', ['-l', share]);
    await rm(base, { recursive: true, force: true });
  });

  it('the cut-off holder\'s writer dies before its fence deadline and does not resume when the share returns', async () => {
    const node = async (n: string) => {
      const pool = new DirPool('nas', join(base, n, 'nas'), { shared: true });
      await pool.init();
      const warnings = new StateWarnings();
      const c = new Cluster([pool], { node: n, version: 'test', heartbeatMs: HEARTBEAT_MS, nodeTimeoutMs: NODE_TIMEOUT_MS, fenceMs: FENCE_MS, log, dataDir: join(base, n, 'data'), warnings });
      await c.start();
      clusters.push(c);
      return { c, warnings };
    };
    const a = await node('a');
    const b = await node('b');
    const rec = { name: 'pg', createdAt: '2026-12-02T00:00:00.000Z' } as never;
    const vol = join(base, 'a', 'nas', 'volumes', 'pg', 'data');
    await mkdir(vol, { recursive: true });
    await a.c.acquire('nas', rec);

    agent = spawn(FERRY_BIN, ['fence', '--data-dir', join(base, 'a', 'data'), '--poll', '50'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const mnt = join(base, 'mnt-a');
    await mkdir(mnt);
    writer = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount --bind ${vol} ${mnt} && cd / && i=0; while :; do i=$((i+1)); echo "A $i $(date +%s%N)" >> ${mnt}/stamps; sleep 0.02; done`], { stdio: 'ignore' });
    let killedAt: number | undefined;
    writer.once('exit', () => (killedAt = Date.now()));
    const stamps = join(share, 'volumes', 'pg', 'data', 'stamps');
    await until('A writes', async () => (await readFile(stamps, 'utf8').catch(() => '')).includes('A 5 '), 5000);
    await sleep(1000);
    assert.equal(killedAt, undefined, 'a holder that beats is not fenced');

    // the cut: A loses the share; its last heartbeat that landed is the one in the share now
    execFileSync('umount', ['-l', join(base, 'a', 'nas')]);
    await until('A\'s writer is fenced', async () => killedAt !== undefined, 10_000);
    const lastBeat = Date.parse(JSON.parse(await readFile(await beatFile(share, 'a'), 'utf8')).lastSeen);
    const deadline = lastBeat + FENCE_MS;
    assert.ok(killedAt! <= deadline, `killed ${killedAt! - deadline} ms after the fence deadline`);
    assert.equal(readFenceLog(join(base, 'a', 'data')).length, 1);

    // B takes over only after nodeTimeout
    await assert.rejects(b.c.acquire('nas', rec), /node a holds it/);
    await sleep(Math.max(0, lastBeat + NODE_TIMEOUT_MS + 100 - Date.now()));
    await b.c.acquire('nas', rec);
    const writtenByB = join(base, 'b', 'nas', 'volumes', 'pg', 'data', 'b-data');
    await writeFile(writtenByB, 'B\n');

    // the link comes back: A reconciles, names B, does not take the volume back
    execFileSync('mount', ['--bind', share, join(base, 'a', 'nas')]);
    const warned = await until('A names the new holder', async () => a.warnings.list().find((w) => w.code === 'fenced'), 10_000);
    assert.match(warned.message, /now held by node b/);
    assert.equal(await a.c.stillHeld('nas', 'pg'), false);
    await assert.rejects(a.c.acquire('nas', rec), /node b holds it/);
    assert.equal(await b.c.stillHeld('nas', 'pg'), true);

    const lines = (await readFile(stamps, 'utf8')).split('\n').filter((l) => /^A [0-9]+ [0-9]{19}$/.test(l));
    const late = lines.filter((l) => BigInt(l.split(' ')[2]!) > BigInt(deadline) * 1_000_000n);
    assert.equal(late.length, 0, 'no write from the cut-off holder after its fence deadline');
    assert.equal(await readFile(writtenByB, 'utf8'), 'B\n');
    process.stderr.write(`fence-cutoff: A wrote ${lines.length} stamps, killed ${deadline - killedAt!} ms before its fence deadline\n`);
  });

  it('runs the operator\'s fenceCommand before a takeover and takes over only when it succeeds', async () => {
    const mk = async (n: string, fenceCommand?: string) => {
      const pool = new DirPool('nas', join(base, n, 'nas'), { shared: true });
      await pool.init();
      const c = new Cluster([pool], { node: `hook-${n}`, version: 'test', heartbeatMs: HEARTBEAT_MS, nodeTimeoutMs: NODE_TIMEOUT_MS, fenceMs: FENCE_MS, log, dataDir: join(base, n, 'hook-data'), ...(fenceCommand ? { fenceCommand } : {}) });
      await c.start();
      clusters.push(c);
      return c;
    };
    const record = join(base, 'hook-ran');
    const rec = { name: 'hooked', createdAt: '2026-12-02T00:00:00.000Z' } as never;
    const old = await mk('a');
    await old.acquire('nas', rec);
    await old.stop(); // but not released: this node is gone with the lock (stop marks the beat; make it stale)
    await sleep(NODE_TIMEOUT_MS + 200);
    const failing = await mk('b', 'exit 3');
    await assert.rejects(failing.acquire('nas', rec), /fenceCommand failed/);
    await failing.stop();
    const ok = await mk('b', `echo "$FERRY_FENCE_NODE $FERRY_FENCE_POOL $FERRY_FENCE_VOLUME" > ${record}`);
    await ok.acquire('nas', rec);
    assert.equal(await readFile(record, 'utf8'), 'hook-a nas hooked\n');
  });

  it('refuses a config whose fence deadline does not end before nodeTimeout', async () => {
    const f = join(base, 'bad.yaml');
    await writeFile(f, 'heartbeatInterval: 200ms\nnodeTimeout: 3s\nfenceDeadline: 2900ms\n');
    await assert.rejects(loadConfig({ config: f }), /fenceDeadline \(2900ms\) must be/);
    await writeFile(f, 'heartbeatInterval: 200ms\nnodeTimeout: 3s\nfenceDeadline: 1500ms\n');
    assert.equal((await loadConfig({ config: f })).fenceDeadlineMs, 1500);
    await writeFile(f, 'heartbeatInterval: 5s\nnodeTimeout: 30s\n');
    assert.equal((await loadConfig({ config: f })).fenceDeadlineMs, 20_000);
  });
});

async function beatFile(share: string, n: string): Promise<string> {
  const out = execFileSync('find', [share, '-path', `*/nodes/${n}.json`], { encoding: 'utf8' }).split('\n').filter(Boolean);
  assert.ok(out[0], 'the heartbeat file of node ' + n);
  return out[0]!;
}
