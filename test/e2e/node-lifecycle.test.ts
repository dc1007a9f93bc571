// Issue 12 item 4: a node that reboots with its containers, one that dies for good, and one that comes back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { makeSharedDir, startSharedNode, stopSharedNodes, type SharedNode } from '../helpers/shared-node.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';
import type { Status } from '../../src/wire/types.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'node death, return and reboot under three real Docker engines');

const HEARTBEAT_MS = 300;
const NODE_TIMEOUT_MS = 2500;
const FENCE_MS = 1500;
/** Lost Unmounts are looked for every second, and dropped once 3 s old (ferryd's defaults: 20 s and 60 s). */
const STALE_MOUNTS = '1000,3000';

type N = 'A' | 'B' | 'C';

/**
 * Three Docker hosts (private engines) with a ferryd each on one shared pool (a directory all three see, as an
 * NFS mount is on real hosts). A "power loss" kills dockerd, containerd, the shims, every container and ferryd
 * at once: no Unmount reaches ferryd, no lock is let go. What a user checks afterwards: the data byte for byte,
 * who holds an rwo volume, `docker volume ls` on every host, and ferryd's mount counts against what Docker runs.
 */
describe('nodes that reboot, die for good and come back (shared pool, three Docker engines)', { skip, timeout: 600_000 }, () => {
  let base: string;
  const hosts: Record<N, SharedNode> = {} as never;
  const saved = process.env.FERRY_STALE_MOUNTS_MS;

  const node = async (n: N, pool: string) => {
    hosts[n] = await startSharedNode({ base, pool, name: n, label: 'life', heartbeatMs: HEARTBEAT_MS, nodeTimeoutMs: NODE_TIMEOUT_MS, fenceMs: FENCE_MS });
  };
  const on = (n: N) => hosts[n].h;
  const run = (n: N, ...args: string[]) => on(n).dockerOk(['run', '--rm', '--network', 'none', ...args]);
  const status = async (n: N): Promise<Status> => JSON.parse((await hosts[n].f.cli('--json', 'status')).stdout) as Status;
  const nodeAlive = async (from: N, n: N) => (await status(from)).cluster?.nodes.find((x) => x.node === `node${n}`)?.alive;
  const attachedOn = async (from: N, volume: string) => ((await status(from)).cluster?.attachments ?? []).filter((a) => a.volume === volume && a.alive).map((a) => a.node).sort();
  const mounts = async (n: N, volume: string): Promise<number> => JSON.parse((await hosts[n].f.cli('--json', 'volume', 'inspect', volume)).stdout).mounts;
  const volumeLs = async (n: N) => (await on(n).dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).trim().split('\n').filter(Boolean).sort();
  const powerLoss = async (n: N) => {
    await hosts[n].f.crash();
    await on(n).powerOff();
  };
  /** Data written by a container: random bytes and their checksum, read back by `sha256sum -c` (byte for byte). */
  const writeBlob = (n: N, vol: string, file: string) =>
    run(n, '-v', `${vol}:/d`, 'bb', 'sh', '-c', `dd if=/dev/urandom of=/d/${file} bs=64k count=16 2>/dev/null && cd /d && sha256sum ${file} > ${file}.sum`);
  const checkBlob = async (n: N, vol: string, file: string) => assert.match(await run(n, '-v', `${vol}:/d`, 'bb', 'sh', '-c', `cd /d && sha256sum -c ${file}.sum`), new RegExp(`${file}: OK`));

  before(async () => {
    process.env.FERRY_STALE_MOUNTS_MS = STALE_MOUNTS;
    base = await mkdtemp(join(tmpdir(), 'ferry-e2e-life-'));
    const pool = await makeSharedDir(join(base, 'nas'));
    await Promise.all([node('A', pool), node('B', pool), node('C', pool)]);
  });
  after(async () => {
    if (saved === undefined) delete process.env.FERRY_STALE_MOUNTS_MS;
    else process.env.FERRY_STALE_MOUNTS_MS = saved;
    await stopSharedNodes([hosts.A, hosts.B, hosts.C]);
    await rm(base, { recursive: true, force: true });
  });

  it('a node reboots with its containers (dockerd first, ferryd 4 s later): they come back with their data, it keeps its rwo volume, counts match Docker', async (t) => {
    await on('B').dockerOk(['volume', 'create', '-d', 'ferry', 'web']);
    await on('B').dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', 'db']);
    await writeBlob('B', 'web', 'site');
    await writeBlob('B', 'db', 'base');
    for (const [name, vol] of [['web-b', 'web'], ['db-b', 'db']]) {
      await on('B').dockerOk(['run', '-d', '--name', name!, '--restart', 'always', '--network', 'none', '-v', `${vol}:/d`, 'bb', 'sh', '-c', `echo up >> /d/${name}.boots; exec sleep 3600`]);
    }
    await until('B holds db', async () => (await attachedOn('A', 'db')).join() === 'nodeB', 10_000);

    const t0 = Date.now();
    await powerLoss('B');
    // as at boot: dockerd starts (restart policies, Get of every volume) and ferryd comes 4 s later
    const booting = on('B').boot({ readyTimeoutMs: 120_000 });
    await sleep(4000);
    await hosts.B.f.start();
    await booting;
    const dockerUp = Date.now() - t0;
    // the restart-always containers are started again (by Docker's retry or ferryd's revival) with their data
    await until('web-b and db-b run again', async () => (await on('B').dockerOk(['ps', '--format', '{{.Names}}'])).split('\n').filter((s) => s === 'web-b' || s === 'db-b').length === 2, 60_000);
    const back = Date.now() - t0;
    assert.equal(await on('B').dockerOk(['exec', 'db-b', 'cat', '/d/db-b.boots']), 'up\nup\n');
    await checkBlob('B', 'web', 'site');
    // rwo: B kept db (nobody asked for it while B was down); A is refused, naming B
    const refused = await on('A').docker(['run', '--rm', '--network', 'none', '-v', 'db:/d', 'bb', 'true']);
    assert.notEqual(refused.code, 0, 'A must not mount db while B holds it');
    assert.match(refused.stderr, /volume db is rwo .* node nodeB holds it/);
    // the mounts of the containers that died with the power are dropped: one mount each, what Docker runs
    await until('B counts one mount each of web and db', async () => (await mounts('B', 'web')) === 1 && (await mounts('B', 'db')) === 1, 30_000);
    await until('attachments of web and db name B alone', async () => (await attachedOn('A', 'web')).join() === 'nodeB' && (await attachedOn('A', 'db')).join() === 'nodeB', 10_000);
    for (const n of ['A', 'B', 'C'] as const) assert.deepEqual(await volumeLs(n), ['ferry db', 'ferry web'], `docker volume ls on ${n}`);
    t.diagnostic(`reboot: dockerd back in ${(dockerUp / 1000).toFixed(1)} s, both containers running ${(back / 1000).toFixed(1)} s after the power loss`);
    await on('B').dockerOk(['rm', '-f', 'web-b', 'db-b']);
  });

  it('a node dies for good: its attachments expire, its rwo volume is taken over with its data, its references stop counting', async (t) => {
    await on('C').dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', 'logs']);
    await on('C').dockerOk(['volume', 'create', '-d', 'ferry', 'cold']);
    await writeBlob('C', 'logs', 'day1');
    await on('C').dockerOk(['run', '-d', '--name', 'logs-c', '--restart', 'always', '--network', 'none', '-v', 'logs:/d', '-v', 'web:/w', 'bb', 'sh', '-c', 'echo C > /d/writer; exec sleep 3600']);
    await on('C').dockerOk(['create', '--name', 'cold-c', '-v', 'cold:/d', 'bb', 'true']);
    await until('C holds logs and has web attached', async () => (await attachedOn('A', 'logs')).join() === 'nodeC' && (await attachedOn('A', 'web')).join() === 'nodeC', 10_000);
    // while C lives, its references hold: rm is refused on A
    const held = await hosts.A.f.cli('volume', 'rm', 'cold');
    assert.notEqual(held.code, 0, 'rm of a volume a live node references');
    assert.match(held.stderr, /cold-c/);

    const t0 = Date.now();
    await powerLoss('C');
    await until('C is dead for A', async () => (await nodeAlive('A', 'C')) === false, NODE_TIMEOUT_MS + 10_000);
    const dead = Date.now() - t0;
    // (listings judge liveness by the heartbeat watch's last look, up to one interval older than the status's
    // node list: see cluster/beat-watch.ts)
    await until("C's attachment of web expired", async () => (await attachedOn('A', 'web')).length === 0, 5 * HEARTBEAT_MS + 5_000);
    // A takes logs over and finds every byte C wrote
    await on('A').dockerOk(['run', '-d', '--name', 'logs-a', '--network', 'none', '-v', 'logs:/d', 'bb', 'sh', '-c', 'echo A > /d/writer; exec sleep 3600']);
    await checkBlob('B', 'web', 'site');
    assert.equal(await on('A').dockerOk(['exec', 'logs-a', 'sh', '-c', 'cd /d && sha256sum -c day1.sum && cat writer']), 'day1: OK\nA\n');
    await until('A holds logs', async () => (await attachedOn('B', 'logs')).join() === 'nodeA', 10_000);
    // a dead node's references no longer keep a volume: A removes cold to the trash
    const rmCold = await hosts.A.f.cli('volume', 'rm', 'cold');
    assert.equal(rmCold.code, 0, rmCold.stderr);
    for (const n of ['A', 'B'] as const) assert.deepEqual(await volumeLs(n), ['ferry db', 'ferry logs', 'ferry web'], `docker volume ls on ${n}`);
    t.diagnostic(`death: C seen dead ${(dead / 1000).toFixed(1)} s after the power loss (nodeTimeout ${NODE_TIMEOUT_MS / 1000} s)`);
  });

  it('the dead node comes back: it does not take its rwo volume back, its restart-always container stays stopped, counts match Docker', async (t) => {
    const t0 = Date.now();
    const booting = on('C').boot({ readyTimeoutMs: 120_000 });
    await hosts.C.f.start();
    await booting;
    await until('C is alive for A again', async () => (await nodeAlive('A', 'C')) === true, 10_000);
    const back = Date.now() - t0;
    // Docker (and ferryd's revival) try logs-c again; A holds logs, so it must stay down
    await sleep(12_000);
    const state = (await on('C').dockerOk(['inspect', '-f', '{{.State.Status}} {{.State.Error}}', 'logs-c'])).trim();
    assert.doesNotMatch(state, /^running/, `logs-c must not run while A holds logs: ${state}`);
    const refused = await on('C').docker(['run', '--rm', '--network', 'none', '-v', 'logs:/d', 'bb', 'true']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /volume logs is rwo .* node nodeA holds it/);
    // nothing of C's was written after the takeover
    assert.equal(await on('A').dockerOk(['exec', 'logs-a', 'cat', '/d/writer']), 'A\n');
    // C's mounts from before the power loss are gone; Docker runs nothing with them
    await until('C counts no mounts of logs or web', async () => (await mounts('C', 'logs')) === 0 && (await mounts('C', 'web')) === 0, 30_000);
    // (C withdraws its attachments once its counts drop; A's listing sees that within about a second)
    await until('A alone holds logs, and nobody has web attached', async () => (await attachedOn('A', 'logs')).join() === 'nodeA' && (await attachedOn('A', 'web')).length === 0, 10_000);
    assert.deepEqual(await volumeLs('C'), ['ferry db', 'ferry logs', 'ferry web'], `docker volume ls on C: cold was removed while C was dead (ferry volume ls on C: ${(await hosts.C.f.cli('volume', 'ls')).stdout})`);
    // once A lets go, C's container can have its volume (and its data) again
    await on('A').dockerOk(['rm', '-f', 'logs-a']);
    await on('C').dockerOk(['start', 'logs-c']);
    assert.equal(await on('C').dockerOk(['exec', 'logs-c', 'cat', '/d/writer']), 'C\n');
    await checkBlob('A', 'web', 'site');
    t.diagnostic(`return: C alive again ${(back / 1000).toFixed(1)} s after boot began; logs-c: ${state}`);
    await on('C').dockerOk(['rm', '-f', 'logs-c', 'cold-c']);
  });
});
