import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import type { Job } from '../../src/wire/types.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { glusterPrerequisites } from '../helpers/gluster.js';
import { startLocalGluster, type LocalGluster } from '../helpers/gluster-local.js';
import { sleep, until } from '../helpers/wait.js';

/**
 * A shared pool on a real GlusterFS volume (FUSE) that hangs or disappears under a real ferryd, which
 * also has the local pool. The hang: glusterd and the brick (glusterfsd) are SIGSTOPped for HANG_MS; the
 * FUSE client keeps waiting for them, so every call on the share blocks, as with a dead NFS server.
 * The disappearance: the FUSE client is killed (ENOTCONN), then the share is lazily unmounted (a bare
 * directory). Through each: local volumes keep working, `ferry status` answers within 2 s, Docker's Get
 * and List of the shared volumes never say "no such volume"; afterwards everything works without a
 * restart and the data written before is byte-identical. The test process itself never touches the
 * share during a fault (its own fs calls would hang too).
 */
const HANG_MS = Number(process.env.FERRY_TEST_HANG_MS ?? 15_000);
/** The requirement for `ferry status` during a fault (the CLI's start-up included). */
const STATUS_LIMIT_MS = 2000;
/** Longer than any call may wait during a fault (a snapshot or backup of a local volume included). */
const CALL_LIMIT_MS = 30_000;
const skip = skipUnless([...(isRoot() ? [] : ['root (uid 0)']), ...glusterPrerequisites()], 'hung shares');

interface Figures {
  fault: string;
  injected: number;
  survived: number;
  writesLost: number;
  longestMs: number;
  longestCall: string;
}

describe('a shared pool whose share hangs or disappears', { skip }, () => {
  let base: string;
  let mnt: string;
  let g: LocalGluster;
  let f: Ferryd;
  const stopped = new Set<number>();
  const figures: Figures[] = [];
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const written = new Map<string, string>(); // file on the share -> sha256

  /** One call, timed into `fig` (the longest wait of any call during the fault). */
  const timed = async <T>(fig: Figures | undefined, what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // during a fault, a call that waits this long is a ferryd that stopped answering: fail, don't hang
      const limit = new Promise<never>((_, reject) => {
        if (fig) timer = setTimeout(() => reject(new Error(`${what} did not answer within ${CALL_LIMIT_MS / 1000} s during the fault`)), CALL_LIMIT_MS);
      });
      return await Promise.race([fn(), limit]);
    } finally {
      clearTimeout(timer);
      const ms = Date.now() - t0;
      if (fig && ms > fig.longestMs) (fig.longestMs = ms), (fig.longestCall = what);
    }
  };
  const plugin = async (fig: Figures | undefined, method: string, body: Record<string, unknown>) => {
    const r = await timed(fig, `plugin ${method}`, () => f.plugin(method, body));
    return r.json as { Err?: string; Mountpoint?: string; Volume?: { Name: string }; Volumes?: Array<{ Name: string }> };
  };
  const ok = async (fig: Figures | undefined, method: string, body: Record<string, unknown>) => {
    const j = await plugin(fig, method, body);
    assert.equal(j.Err ?? '', '', `${method} ${JSON.stringify(body)}: ${JSON.stringify(j)}`);
    return j;
  };
  const status = async (fig: Figures | undefined) => {
    const t0 = Date.now();
    const r = await timed(fig, 'ferry status', () => f.cli('--json', 'status'));
    const ms = Date.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(ms < STATUS_LIMIT_MS, `ferry status took ${ms} ms during the fault (limit ${STATUS_LIMIT_MS} ms)`);
    return JSON.parse(r.stdout).pools.find((p: { name: string }) => p.name === 'nas') as { ok: boolean; problem?: string; stalled?: { since: string; call: string } };
  };
  /** What Docker may ask about shared volumes during a fault: a cached answer or an error, never "no such volume". */
  const dockerAsks = async (fig: Figures, names: string[]) => {
    for (const n of names) {
      const j = await plugin(fig, 'Get', { Name: n });
      assert.doesNotMatch(j.Err ?? '', /no such|not found|does not exist/i, `Get ${n} during the fault: ${JSON.stringify(j)}`);
      if (!j.Err) assert.equal(j.Volume?.Name, n);
    }
    const l = await plugin(fig, 'List', {});
    if (!l.Err) for (const n of names) assert.ok(l.Volumes?.some((v) => v.Name === n), `List during the fault lacks ${n}: ${JSON.stringify(l)}`);
  };
  /** A local volume's whole life during a fault, with a file written into it and read back. */
  let localN = 0;
  const localWorks = async (fig: Figures) => {
    const name = `local${localN++}`;
    await ok(fig, 'Create', { Name: name, Opts: { pool: 'local' } });
    const m = await ok(fig, 'Mount', { Name: name, ID: `m-${name}` });
    const p = await ok(fig, 'Path', { Name: name });
    assert.equal(p.Mountpoint, m.Mountpoint);
    const data = randomBytes(64 * 1024);
    await writeFile(join(m.Mountpoint!, 'f'), data);
    assert.equal(sha(await readFile(join(m.Mountpoint!, 'f'))), sha(data));
    await ok(fig, 'Unmount', { Name: name, ID: `m-${name}` });
    await ok(fig, 'Remove', { Name: name });
  };
  const signal = async (names: string[], sig: 'SIGSTOP' | 'SIGCONT') => {
    const pids = await g.pids(names);
    assert.ok(pids.length > 0, `no ${names.join('/')} process found`);
    for (const p of pids) {
      process.kill(p, sig);
      if (sig === 'SIGSTOP') stopped.add(p);
      else stopped.delete(p);
    }
    return pids;
  };
  const healthy = () => until('the pool nas answers again', async () => {
    const r = await f.cli('--json', 'status');
    const nas = JSON.parse(r.stdout).pools.find((p: { name: string }) => p.name === 'nas');
    return nas?.ok === true;
  }, 60_000);
  /** After a fault: shared volumes work again without a restart, the data written before is intact. */
  const afterFault = async (fig: Figures, pid: number) => {
    await healthy();
    assert.equal(f.pid, pid, 'ferryd was not restarted');
    for (const [file, want] of written) if (sha(await readFile(file)) !== want) fig.writesLost++;
    assert.equal(fig.writesLost, 0, 'data written before the fault is byte-identical');
    const name = `after-${figures.length}`;
    await ok(undefined, 'Create', { Name: name, Opts: { pool: 'nas' } });
    const m = await ok(undefined, 'Mount', { Name: name, ID: 'x' });
    const data = randomBytes(256 * 1024);
    await writeFile(join(m.Mountpoint!, 'f'), data);
    written.set(join(m.Mountpoint!, 'f'), sha(data));
    await ok(undefined, 'Unmount', { Name: name, ID: 'x' });
    const s = await ok(undefined, 'Mount', { Name: 'shared1', ID: `again-${name}` });
    assert.equal(sha(await readFile(join(s.Mountpoint!, 'big'))), written.get(join(s.Mountpoint!, 'big')));
    await ok(undefined, 'Unmount', { Name: 'shared1', ID: `again-${name}` });
    fig.survived++;
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-hang-'));
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    g = await startLocalGluster();
    await g.mount(mnt);
    await mkdir(join(mnt, 'ferry'));
    const dir = join(base, 'node');
    await mkdir(dir);
    await writeFile(join(base, 'key'), 'correct horse battery staple\n', { mode: 0o600 });
    await mkdir(join(base, 'repo')); // the backup target is on local disk: only the source hangs
    await writeFile(
      join(dir, 'ferry.yaml'),
      ['node: hangnode', 'heartbeatInterval: 200ms', 'nodeTimeout: 120s', 'pools:', '  nas:', `    path: ${join(mnt, 'ferry')}`, '    shared: true', 'backupTargets:', '  disk:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'key')}`, ''].join('\n'),
    );
    f = await startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', 'hangnode'], logLevel: process.env.FERRY_TEST_DEBUG ? 'debug' : 'info' });
    for (const n of ['shared1', 'shared2']) await ok(undefined, 'Create', { Name: n, Opts: { pool: 'nas' } });
    const m = await ok(undefined, 'Mount', { Name: 'shared1', ID: 'long' }); // stays mounted through the faults
    const big = randomBytes(4 * 1024 * 1024);
    await writeFile(join(m.Mountpoint!, 'big'), big);
    written.set(join(m.Mountpoint!, 'big'), sha(big));
    assert.equal((await status(undefined)).ok, true);
  });

  after(async () => {
    if (stopped.size) for (const p of stopped) { try { process.kill(p, 'SIGCONT'); } catch { /* gone */ } }
    if (process.env.FERRY_TEST_KEEP_LOG) await writeFile(process.env.FERRY_TEST_KEEP_LOG, (await f?.logs().catch(() => '')) ?? '');
    await f?.destroy();
    await g?.unmount(mnt).catch(() => undefined);
    await g?.stop().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    if (figures.length) {
      console.log('\nfault                          | injected | survived | writes lost | longest wait of any call');
      for (const x of figures) console.log(`${x.fault.padEnd(30)} | ${String(x.injected).padStart(8)} | ${String(x.survived).padStart(8)} | ${String(x.writesLost).padStart(11)} | ${x.longestMs} ms (${x.longestCall})`);
    }
  });

  it(`the GlusterFS server stopped (SIGSTOP) for ${HANG_MS / 1000} s: ferryd keeps answering, the pool is stalled, then heals`, async () => {
    const fig: Figures = { fault: `SIGSTOP glusterd+glusterfsd ${HANG_MS / 1000}s`, injected: 1, survived: 0, writesLost: 0, longestMs: 0, longestCall: '' };
    figures.push(fig);
    const pid = f.pid;
    const t0 = Date.now();
    await signal(['glusterd', 'glusterfsd'], 'SIGSTOP');
    try {
      // Docker asks, in parallel, about everything at once (as at its start): these calls hit the share
      await Promise.all([...Array(8)].map(() => dockerAsks(fig, ['shared1', 'shared2'])));
      let sawStalled = false;
      while (Date.now() - t0 < HANG_MS) {
        await localWorks(fig);
        const nas = await status(fig);
        assert.equal(nas.ok, false, 'the hung pool is not shown as ok');
        if (nas.stalled) {
          sawStalled = true;
          assert.match(nas.problem ?? '', /not answering/);
          // a snapshot of a volume of the stalled pool is refused as every other call is, not a job stuck until the share is back
          const snap = await Promise.race([f.cli('snapshot', 'create', 'shared1'), sleep(30_000).then(() => undefined)]);
          assert.ok(snap, 'ferry snapshot create on the stalled pool did not come back within 30 s');
          assert.equal(snap.code, 1);
          assert.match(snap.stderr, /pool nas is not answering/);
        }
        await dockerAsks(fig, ['shared1', 'shared2']);
        const e = await plugin(fig, 'Create', { Name: `during-${localN}`, Opts: { pool: 'nas' } });
        assert.match(e.Err ?? '', /not answering|not usable/, 'a create on the hung pool fails, saying why');
        await sleep(500);
      }
      assert.ok(sawStalled, 'ferry status showed the pool stalled during the hang');
    } finally {
      await signal(['glusterd', 'glusterfsd'], 'SIGCONT');
    }
    await afterFault(fig, pid);
  });

  it('the share hangs while a backup reads a shared volume: snapshots and backups of local volumes go on, the backup ends and the next one works', { timeout: 10 * 60_000 }, async () => {
    const fig: Figures = { fault: `SIGSTOP during a backup ${HANG_MS / 1000}s`, injected: 1, survived: 0, writesLost: 0, longestMs: 0, longestCall: '' };
    figures.push(fig);
    const pid = f.pid;
    const cli = async (...args: string[]) => {
      const r = await timed(fig, `ferry ${args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}`, () => f.cli(...args));
      assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const job = async (id: string) => (await timed(fig, 'GET /v1/jobs/ID', () => unixRequest(f.apiSocket, 'GET', `/v1/jobs/${id}`))).json as Job;
    // a volume big enough that its backup is still reading when the share stops: 1,600 files of 256 KiB
    await ok(undefined, 'Create', { Name: 'big', Opts: { pool: 'nas' } });
    const m = await ok(undefined, 'Mount', { Name: 'big', ID: 'fill' });
    for (let i = 0; i < 1600; i++) {
      const b = randomBytes(256 * 1024);
      await writeFile(join(m.Mountpoint!, `f${i}`), b);
      written.set(join(m.Mountpoint!, `f${i}`), sha(b));
    }
    await ok(undefined, 'Unmount', { Name: 'big', ID: 'fill' });
    await cli('backup', 'init', '--target', 'disk');
    await ok(undefined, 'Create', { Name: 'lvol', Opts: { pool: 'local' } });
    const lm = await ok(undefined, 'Mount', { Name: 'lvol', ID: 'l' });
    await writeFile(join(lm.Mountpoint!, 'f'), randomBytes(1024 * 1024));
    await ok(undefined, 'Unmount', { Name: 'lvol', ID: 'l' });

    const id = (JSON.parse(await cli('--json', 'backup', 'create', 'big', '--target', 'disk', '--no-wait')) as { id: string }).id;
    await until('the backup of big reads data', async () => {
      const j = await job(id);
      return j.state !== 'running' || j.progress.bytesDone > 0;
    }, 60_000);
    const t0 = Date.now();
    await signal(['glusterd', 'glusterfsd'], 'SIGSTOP');
    let rounds = 0;
    try {
      assert.equal((await job(id)).state, 'running', 'the backup was still reading when the share stopped (make the volume bigger)');
      while (Date.now() - t0 < HANG_MS) {
        // each of these would wait for ever if the hung reads held every thread of ferryd's threadpool
        await localWorks(fig);
        await cli('snapshot', 'create', 'lvol', '--name', `during${rounds}`);
        await cli('backup', 'create', 'lvol', '--target', 'disk');
        await status(fig);
        await dockerAsks(fig, ['shared1', 'shared2']);
        rounds++;
      }
      assert.ok(rounds >= 2, `only ${rounds} rounds of local work during the hang`);
    } finally {
      await signal(['glusterd', 'glusterfsd'], 'SIGCONT');
    }
    // the backup that was reading ends by itself (done, or failed saying why), and the next one works
    await until('the interrupted backup ends', async () => (await job(id)).state !== 'running', 120_000);
    const j = await job(id);
    if (j.state === 'failed') assert.match(j.error?.message ?? '', /not answering|unavailable|hung|timed out|stalled/i, `the failed backup says why: ${JSON.stringify(j.error)}`);
    await afterFault(fig, pid);
    await cli('backup', 'create', 'big', '--target', 'disk');
  });

  it('the FUSE client killed (transport endpoint not connected), then the share lazily unmounted: the same, and it heals once mounted again', async () => {
    for (const how of ['kill the FUSE client', 'lazy unmount'] as const) {
      const fig: Figures = { fault: how, injected: 1, survived: 0, writesLost: 0, longestMs: 0, longestCall: '' };
      figures.push(fig);
      const pid = f.pid;
      if (how === 'kill the FUSE client') {
        for (const p of await g.pids(['glusterfs'])) process.kill(p, 'SIGKILL');
      } else {
        await g.unmount(mnt); // umount, or umount -l while busy
      }
      await until('ferryd sees the pool down', async () => (await status(fig)).ok === false, 30_000);
      for (let i = 0; i < 3; i++) {
        await localWorks(fig);
        await status(fig);
        await dockerAsks(fig, ['shared1', 'shared2']);
        const e = await plugin(fig, 'Mount', { Name: 'shared2', ID: `gone-${i}` });
        assert.notEqual(e.Err ?? '', '', 'a mount on the missing share fails');
      }
      // mount again (a dead FUSE mount must go first)
      await g.unmount(mnt).catch(() => undefined);
      await g.mount(mnt);
      await afterFault(fig, pid);
    }
  });
});
