// Issue 12 item 3 with a real PostgreSQL: the rwo holder's dockerd and ferryd die, another host takes the database over.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { run, FERRY_BIN } from '../helpers/ferryd.js';
import { makeSharedDir, startSharedNode, stopSharedNodes, type SharedNode } from '../helpers/shared-node.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { sleep, until } from '../helpers/wait.js';
import { importPgImage, pgPrerequisites, PG_BIN, PG_COMMAND, PG_UID } from '../helpers/pg-image.js';
import { readFenceLog } from '../../src/fence/agent.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...pgPrerequisites()], 'PostgreSQL fenced under two real Docker engines');

const HEARTBEAT_MS = 200;
const FENCE_MS = 1500;
const NODE_TIMEOUT_MS = 3000;

/**
 * What docs/shared-pools.md promises for an rwo volume, with the program it was found with: PostgreSQL 15 as
 * pid 1 of its container (its pid-file check cannot see another container's server), its data on an rwo volume
 * of a shared pool. A client on the host inserts rows one by one and notes each acknowledged one. Host A's
 * dockerd and ferryd are killed with -9 (the container lives on under its shim); A's fencing agent must kill the
 * server before A's fence deadline, and B starts its own server on the same data only after nodeTimeout. B's
 * server recovers from the crash and holds every row A acknowledged; no row of A is dated after A's deadline;
 * B's postmaster started after A's was killed: never two servers on one data directory.
 */
describe('PostgreSQL on an rwo volume: kill -9 of the holder\'s dockerd and ferryd, takeover by another host', { skip, timeout: 600_000 }, () => {
  let base: string;
  const hosts: Record<'A' | 'B', SharedNode> = {} as never;
  let agent: ChildProcess | undefined;
  let client: ChildProcess | undefined;

  const node = async (n: 'A' | 'B', pool: string) => {
    hosts[n] = await startSharedNode({ base, pool, name: n, label: 'pg', heartbeatMs: HEARTBEAT_MS, nodeTimeoutMs: NODE_TIMEOUT_MS, fenceMs: FENCE_MS });
    await importPgImage(hosts[n].h);
  };
  /** The server's socket directory is its data directory, which the host sees through the pool. */
  const sock = () => join(base, 'nas', 'volumes', 'db', 'data');
  const sql = (q: string) => run(join(PG_BIN, 'psql'), ['-h', sock(), '-U', 'postgres', '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', q]);
  const sqlOk = async (q: string) => {
    const r = await sql(q);
    assert.equal(r.code, 0, `psql -c ${q}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const startServer = (n: 'A' | 'B') =>
    hosts[n].h.dockerOk(['run', '-d', '--name', `pg-${n.toLowerCase()}`, '--user', `${PG_UID}:${PG_UID}`, '--network', 'none', '--stop-timeout', '1', '-v', 'db:/pgdata', 'pg', ...PG_COMMAND]);

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-e2e-pg-'));
    const pool = await makeSharedDir(join(base, 'nas'));
    await Promise.all([node('A', pool), node('B', pool)]);
  });
  after(async () => {
    client?.kill('SIGKILL');
    agent?.kill('SIGKILL');
    await stopSharedNodes([hosts.A, hosts.B]);
    await rm(base, { recursive: true, force: true });
  });

  it('B\'s server starts after A\'s was fenced, recovers, and holds every row A acknowledged', async (t) => {
    const A = hosts.A;
    const B = hosts.B;
    // one kernel plays both hosts here: A's agent must not see B's containers (on real hosts it sees only its own)
    agent = spawn(FERRY_BIN, ['fence', '--data-dir', A.f.dataDir, '--cgroup-prefix', A.h.cgroupParent], { stdio: ['ignore', 'ignore', 'inherit'] });
    await A.h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'access=rwo', '-o', `uid=${PG_UID}`, '-o', `gid=${PG_UID}`, '-o', 'mode=0700', 'db']);
    await startServer('A');
    await until('A\'s server answers', async () => (await sql('select 1')).code === 0, 60_000);
    await sqlOk("create table t (i int primary key, who text not null, at double precision not null default extract(epoch from clock_timestamp()))");

    // the client: one INSERT per psql call; a line on stdout is a row the server acknowledged (committed, fsynced)
    const acked: number[] = [];
    client = spawn('sh', ['-c', `i=0; while :; do i=$((i+1)); ${join(PG_BIN, 'psql')} -h '${sock()}' -U postgres -qAtX -c "insert into t (i, who) values ($i, 'A')" >/dev/null 2>&1 && echo $i; done`], { stdio: ['ignore', 'pipe', 'ignore'] });
    client.stdout!.on('data', (b: Buffer) => acked.push(...b.toString().split('\n').filter(Boolean).map(Number)));
    await until('A acknowledged 50 rows', async () => acked.length >= 50, 60_000);

    await A.f.crash();
    process.kill(A.h.pid, 'SIGKILL');
    await until('A\'s server is fenced', async () => readFenceLog(A.f.dataDir).length > 0, 10_000);
    const fence = readFenceLog(A.f.dataDir)[0]!;
    const lastBeat = Date.parse(fence.renewedAt);
    const deadline = lastBeat + FENCE_MS;
    await sleep(Math.max(0, lastBeat + NODE_TIMEOUT_MS + 300 - Date.now()));
    client.kill('SIGKILL');
    const ackedByA = new Set(acked);

    const t1 = Date.now();
    await startServer('B');
    await until('B\'s server answers', async () => (await sql('select 1')).code === 0, 60_000);
    const tookOver = Date.now() - t1;
    const bStart = Number(await sqlOk('select extract(epoch from pg_postmaster_start_time())'));
    const rows = (await sqlOk("select i from t where who = 'A' order by i")).split('\n').filter(Boolean).map(Number);
    const missing = [...ackedByA].filter((i) => !rows.includes(i));
    assert.deepEqual(missing, [], 'rows A acknowledged are missing on B');
    const lastA = Number(await sqlOk("select max(at) from t where who = 'A'"));
    assert.ok(lastA * 1000 <= deadline, `a row of A is dated ${((lastA * 1000 - deadline) / 1000).toFixed(3)} s after A's fence deadline`);
    assert.ok(bStart * 1000 >= Date.parse(fence.at), `B's postmaster started at ${new Date(bStart * 1000).toISOString()}, before A's was fenced at ${fence.at}`);
    for (const pid of fence.pids) assert.equal(await readFile(`/proc/${pid}/stat`).then(() => true, () => false), false, `A's process ${pid} still runs`);
    // B's server works: it writes, and what it wrote is read back
    await sqlOk("insert into t (i, who) select g, 'B' from generate_series(100001, 100100) g");
    assert.equal(await sqlOk("select count(*) from t where who = 'B'"), '100');
    const logs = await B.h.docker(['logs', 'pg-b']);
    assert.match(logs.stdout + logs.stderr, /not properly shut down; automatic recovery in progress/, 'B\'s server recovered A\'s crashed data directory');
    t.diagnostic(
      `postgres: A acknowledged ${ackedByA.size} rows (B holds ${rows.length} of A's: acknowledged ones all there); A's last row ${((deadline - lastA * 1000) / 1000).toFixed(3)} s before its fence deadline; ` +
        `agent killed ${fence.pids.length} process(es) at ${fence.at}; B's postmaster ${((bStart * 1000 - Date.parse(fence.at)) / 1000).toFixed(1)} s later, answering (crash recovery done) ${tookOver} ms after docker run`,
    );
    await B.h.dockerOk(['rm', '-f', 'pg-b']);
  });
});
