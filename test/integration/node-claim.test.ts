import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, runFerry, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';

/**
 * Two ferryd with data dirs of their own that claim one node name on one shared pool (a directory
 * bind-mounted where the pool lives, as in shared.test.ts): the second is refused while the first beats.
 * nodeTimeout is long, so that a crashed ferryd's beat is always fresh when the next one starts.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'one node name per ferryd in a shared pool');

describe('one ferryd per node name in a shared pool', { skip }, () => {
  let base: string;
  let mnt: string;
  const running: Ferryd[] = [];
  const configFile = async (dir: string) => {
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'ferry.yaml');
    await writeFile(file, ['node: twin', 'heartbeatInterval: 200ms', 'nodeTimeout: 30s', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${mnt}`, '    shared: true'].join('\n'));
    return file;
  };
  const startTwin = async (name: string) => {
    const dir = join(base, name);
    const f = await startFerryd({ dir, extraArgs: ['--config', await configFile(dir), '--node', 'twin'] });
    running.push(f);
    return f;
  };
  /** A ferryd that is expected to be refused: run to its end (it exits at once when refused). */
  const refusedTwin = async (name: string) => {
    const dir = join(base, name);
    const file = await configFile(dir);
    return runFerry(['daemon', '--config', file, '--data-dir', join(dir, 'data'), '--plugin-socket', join(dir, 'plugin.sock'), '--api-socket', join(dir, 'api.sock'), '--docker-host', `unix://${join(dir, 'none.sock')}`, '--node', 'twin']);
  };
  const beat = async () => JSON.parse(await readFile(join(mnt, 'nodes', 'twin.json'), 'utf8'));

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-claim-'));
    const share = join(base, 'nas-export');
    mnt = join(base, 'mnt-nas');
    await mkdir(share);
    await mkdir(mnt);
    assert.equal((await run('mount', ['--bind', share, mnt])).code, 0);
  });
  after(async () => {
    for (const f of running) await f.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('refuses a second ferryd claiming the node name of a live one, naming pid, host, data dir and since when', async () => {
    const a = await startTwin('a');
    assert.equal((await a.plugin('Create', { Name: 'shared-vol' })).json.Err, '');
    const first = await beat();
    assert.equal(first.pid, a.pid);
    assert.equal(first.dataDir, a.dataDir);
    const r = await refusedTwin('b');
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^ferry: another ferryd \\(pid ${a.pid}, on host \\S+, data dir ${a.dataDir}\\) is node twin in shared pool nas, alive since ${first.startedAt.replace(/\./g, '\\.')}`));
    assert.match(r.stderr, /give this ferryd another node name \(--node or node: in the config\)/);
    // the first goes on beating and serving; the refused one never wrote its heartbeat
    assert.equal((await beat()).instance, first.instance);
    assert.equal((await a.plugin('Mount', { Name: 'shared-vol', ID: 'm1' })).json.Err, '');
    assert.equal((await a.plugin('Unmount', { Name: 'shared-vol', ID: 'm1' })).json.Err, '');
    assert.doesNotMatch(await readFile(join(base, 'b', 'ferryd.log'), 'utf8').catch(() => ''), /ferryd ready/);
  });

  it('after a clean stop the name is free at once; after a crash, a ferryd of the same data dir takes it without watching', async () => {
    const a = running[0]!;
    assert.equal(await a.stop(), 0);
    assert.ok((await beat()).stoppedAt, 'a clean stop marks the heartbeat');
    const b = await startTwin('b');
    assert.equal((await beat()).pid, b.pid);
    assert.match(await b.logs(), /node name twin is free in pool nas: the previous ferryd of this node stopped cleanly/);
    assert.doesNotMatch(await b.logs(), /watching whether it still does/);
    await b.crash();
    await b.start(); // same data dir: the lock it now holds proves the old one dead
    assert.match(await b.logs(), /node name twin is free in pool nas: the previous ferryd of this data dir died/);
    assert.doesNotMatch(await b.logs(), /watching whether it still does/);
    assert.equal((await beat()).pid, b.pid);
  });

  it('after a crash, a ferryd of another data dir watches the beat for about an interval, then takes the name over', async () => {
    const b = running[1]!;
    await b.crash();
    const a = running[0]!;
    await a.start();
    const log = await a.logs();
    assert.match(log, /another ferryd beat recently under this node name: watching whether it still does/);
    assert.match(log, /taking over node name twin: its heartbeat of \S+ was not renewed in 1200 ms \(that ferryd died\)/);
    assert.equal((await beat()).pid, a.pid);
    assert.equal((await a.plugin('Get', { Name: 'shared-vol' })).json.Err, '');
  });
});
