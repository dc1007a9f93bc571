import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startFerryd, FERRY_BIN, type Ferryd, type RunResult } from '../helpers/ferryd.js';

/**
 * A second `ferry daemon` on the data dir of `f`, with sockets of its own: a real process, run until it
 * exits, or, should it come up (the failure this guards against), until it says it is ready; then stopped.
 */
function secondDaemon(f: Ferryd, tag: string): Promise<RunResult & { started: boolean }> {
  const args = [
    FERRY_BIN,
    'daemon',
    '--data-dir', f.dataDir,
    '--plugin-socket', join(f.dir, `${tag}-plugin.sock`),
    '--api-socket', join(f.dir, `${tag}-api.sock`),
    '--node', 'test-node',
    '--docker-host', `unix://${join(f.dir, 'no-docker.sock')}`,
    '--log-level', 'info',
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let started = false;
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (!started && stdout.includes('"msg":"ferryd ready"')) {
        started = true;
        child.kill('SIGTERM');
      }
    });
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr, started }));
  });
}

const journals = (f: Ferryd) => readdirSync(join(f.dataDir, 'catalog')).filter((e) => /^mounts\.\d+\.log$/.test(e));

describe('one ferryd per data dir', () => {
  it('refuses a second ferryd on the same data dir at once, naming the first, which keeps working', async () => {
    const f = await startFerryd();
    try {
      assert.equal((await f.cli('volume', 'create', 'keep')).code, 0);
      const before = journals(f);
      const r = await secondDaemon(f, 'second');
      assert.equal(r.started, false, 'the second ferryd must not come up');
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line on stderr, no stack trace: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^ferry: another ferryd \\(pid ${f.pid}\\) is using ${f.dataDir} `));
      assert.match(r.stderr, /stop it first, or start this one with another --data-dir/);
      assert.doesNotMatch(r.stdout, /ferryd ready/);
      // it touched nothing: no sockets of its own, the first one's journal not rotated
      assert.equal(existsSync(join(f.dir, 'second-plugin.sock')), false);
      assert.equal(existsSync(join(f.dir, 'second-api.sock')), false);
      assert.deepEqual(journals(f), before);
      // the first goes on: plugin calls and the CLI
      assert.equal((await f.plugin('Mount', { Name: 'keep', ID: 'm1' })).json.Err, '');
      assert.equal((await f.plugin('Unmount', { Name: 'keep', ID: 'm1' })).json.Err, '');
      assert.equal((await f.cli('volume', 'create', 'more')).code, 0);
      assert.equal(JSON.parse(readFileSync(join(f.dataDir, 'ferryd.lock'), 'utf8')).pid, f.pid, 'the lock file still names the first');
    } finally {
      await f.destroy();
    }
  });

  it('the reported data loss is closed: mounts made before and after a refused second daemon survive kill -9 and a restart; rm refuses', async () => {
    const f = await startFerryd();
    try {
      assert.equal((await f.plugin('Create', { Name: 'pgdata' })).json.Err, '');
      const m = await f.plugin('Mount', { Name: 'pgdata', ID: 'c0ffee' });
      assert.equal(m.json.Err, '');
      writeFileSync(join(m.json.Mountpoint, 'live'), 'data of a running container');
      const r = await secondDaemon(f, 'intruder');
      assert.equal(r.started, false, 'the second ferryd must not come up');
      assert.match(r.stderr, new RegExp(`another ferryd \\(pid ${f.pid}\\) is using ${f.dataDir}`));
      // a second container after the refusal: without the lock its Mount went into a journal the second
      // daemon's start-up had rotated away (deleted), and was lost at the next restart
      assert.equal((await f.plugin('Mount', { Name: 'pgdata', ID: 'beef' })).json.Err, '');
      const oldPid = f.pid;
      await f.crash();
      // no stale lock after kill -9: the next ferryd starts at once and holds it
      await f.start();
      assert.notEqual(f.pid, oldPid);
      assert.equal(JSON.parse(readFileSync(join(f.dataDir, 'ferryd.lock'), 'utf8')).pid, f.pid);
      const inspect = await f.cli('volume', 'inspect', 'pgdata');
      assert.match(inspect.stdout, /^Mounts:\s+2 on this node$/m);
      const rm = await f.cli('volume', 'rm', 'pgdata');
      assert.equal(rm.code, 1);
      assert.match(rm.stderr, /volume pgdata is in use/);
      assert.equal(readFileSync(join(f.dataDir, 'volumes', 'pgdata', 'data', 'live'), 'utf8'), 'data of a running container');
      // and a second daemon is refused by the new one as well
      assert.match((await secondDaemon(f, 'again')).stderr, new RegExp(`another ferryd \\(pid ${f.pid}\\)`));
      for (const id of ['c0ffee', 'beef']) assert.equal((await f.plugin('Unmount', { Name: 'pgdata', ID: id })).json.Err, '');
      assert.match((await f.cli('volume', 'inspect', 'pgdata')).stdout, /^Mounts:\s+0 on this node$/m);
    } finally {
      await f.destroy();
    }
  });
});
