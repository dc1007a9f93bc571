import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd, type RunResult } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { unmountRetrying } from '../helpers/unmount.js';

interface Check {
  check: string;
  state: 'ok' | 'problem' | 'skipped';
  message: string;
  fix?: string;
}

/** The text output with each entry on one line again (continuation lines are indented by 9). */
const unwrapped = (r: RunResult) => r.stdout.replace(/\n {9}/g, ' ');
const problemsOf = (checks: Check[]) => checks.filter((c) => c.state === 'problem');

function assertFits(r: RunResult) {
  for (const line of r.stdout.split('\n')) assert.ok(line.length <= 80, `over 80 columns: ${line}`);
}

describe('ferry doctor against a real ferryd', () => {
  let dir: string;
  let f: Ferryd;
  let cfg: string;
  const doctor = async (...extra: string[]) => {
    const text = await f.cli('doctor', '--config', cfg, '--data-dir', f.dataDir, '--plugin-socket', f.pluginSocket, ...extra);
    const json = await f.cli('--json', 'doctor', '--config', cfg, '--data-dir', f.dataDir, '--plugin-socket', f.pluginSocket, ...extra);
    assertFits(text);
    assert.equal(json.code, text.code);
    return { text, checks: JSON.parse(json.stdout).checks as Check[] };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-doctor-'));
    cfg = join(dir, 'ferry.yaml');
    await writeFile(cfg, ['pools:', '  spare:', `    path: ${join(dir, 'spare')}`].join('\n'));
    f = await startFerryd({ dir: join(dir, 'node'), extraArgs: ['--config', cfg] });
  });
  after(async () => {
    await f?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 on a healthy ferryd, one line per check', async () => {
    assert.equal((await f.cli('volume', 'create', 'fine')).code, 0);
    const { text, checks } = await doctor();
    assert.equal(text.code, 0, text.stdout);
    assert.deepEqual(problemsOf(checks), []);
    assert.match(unwrapped(text), new RegExp(`^ok +ferryd \\S+ answers on ${f.apiSocket} \\(pid ${f.pid}, node test-node`, 'm'));
    assert.match(unwrapped(text), new RegExp(`^ok +ferryd \\(pid ${f.pid}\\) holds the lock of ${f.dataDir}$`, 'm'));
    assert.match(unwrapped(text), /^ok +plugin socket \S+ answers as volume driver ferry$/m);
    assert.match(unwrapped(text), /^skipped +dockerHost: none: no Docker engine on this host to ask whether it lists driver ferry/m);
    assert.match(unwrapped(text), /^ok +pool spare: \S+spare is there$/m);
    assert.match(text.stdout, /\nAll well: \d+ checks passed, 1 skipped\.\n$/);
  });

  it('names an orphan directory, a record without its directory and a missing pool directory, and exits 1', async () => {
    await mkdir(join(f.dataDir, 'volumes', 'stray', 'data'), { recursive: true });
    assert.equal((await f.cli('volume', 'create', 'lost')).code, 0);
    await rm(join(f.dataDir, 'volumes', 'lost'), { recursive: true });
    await rm(join(dir, 'spare'), { recursive: true });
    const { text, checks } = await doctor();
    assert.equal(text.code, 1);
    const byId = new Map(problemsOf(checks).map((c) => [c.check, c]));
    assert.deepEqual([...byId.keys()].sort(), ['orphan-dir:local/stray', 'orphan-record:local/lost', 'pool:spare']);
    const out = unwrapped(text);
    assert.match(out, new RegExp(`^PROBLEM +${f.dataDir}/volumes/stray has no catalog record\\. Fix: restart ferryd to adopt it`, 'm'));
    assert.match(out, new RegExp(`^PROBLEM +volume lost has a record but its data ${f.dataDir}/volumes/lost/data is missing\\. Fix: put the data back there`, 'm'));
    assert.match(out, new RegExp(`^PROBLEM +pool spare: its directory ${dir}/spare does not exist\\. Fix: mount the pool's filesystem there`, 'm'));
    assert.match(text.stdout, /\n3 problems found\.\n$/);
  });

  it('is healthy again once the fixes it names are made', async () => {
    await mkdir(join(f.dataDir, 'volumes', 'lost', 'data'), { recursive: true });
    await mkdir(join(dir, 'spare'));
    await f.stop();
    await f.start(); // adopts `stray`, makes the spare pool's directories
    const { text } = await doctor();
    assert.equal(text.code, 0, text.stdout);
    assert.match((await f.cli('volume', 'inspect', 'stray')).stdout, /ferry\.recovered=true/);
  });

  it('without a running ferryd: says so, checks the lock, sockets and pools locally, exits 1', async () => {
    await f.stop();
    const { text, checks } = await doctor();
    assert.equal(text.code, 1);
    assert.deepEqual(problemsOf(checks).map((c) => c.check), ['ferryd']);
    const out = unwrapped(text);
    assert.match(out, new RegExp(`^PROBLEM +ferryd is not running: nothing answers on ${f.apiSocket}\\. Fix: start it`, 'm'));
    assert.match(out, new RegExp(`^ok +nothing holds the lock of ${f.dataDir}: no ferryd runs on it$`, 'm'));
    assert.match(out, /^ok +no plugin socket at \S+ \(ferryd removes it when it stops\)$/m);
    assert.match(out, /^ok +pool spare: /m);
    // a crash leaves its sockets behind: Docker would stall on the plugin socket
    await f.start();
    await f.crash();
    const after = await doctor();
    assert.deepEqual(problemsOf(after.checks).map((c) => c.check), ['ferryd', 'plugin-socket', 'api-socket']);
    assert.match(unwrapped(after.text), /^PROBLEM +plugin socket \S+ is left from a ferryd that is gone: Docker stalls about 15 s/m);
    await f.start();
  });

  it('a dockerHost with no engine behind it is a problem: removals are refused while it lasts', async () => {
    const g = await startFerryd({ dir: join(dir, 'no-engine'), dockerHost: `unix://${join(dir, 'no-docker.sock')}` });
    try {
      const r = await g.cli('doctor', '--data-dir', g.dataDir, '--plugin-socket', g.pluginSocket);
      assert.equal(r.code, 1, r.stdout);
      assert.match(unwrapped(r), /^PROBLEM +no Docker engine at unix:\/\/\S+no-docker\.sock: ferryd cannot ask which containers use a volume \(`ferry volume rm` refuses without --force\).* Fix: start dockerd \(or wait for it\), or on a host without Docker set dockerHost: none/m);
    } finally {
      await g.destroy();
    }
  });
});

const skipShared = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'ferry doctor on shared pools');

describe('ferry doctor on a shared pool and with stale mounts', { skip: skipShared }, () => {
  let base: string;
  let share: string;
  let mnt: string;
  let f: Ferryd;
  const doctorJson = async () => {
    const r = await f.cli('--json', 'doctor');
    return { code: r.code, checks: JSON.parse(r.stdout).checks as Check[] };
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-doctor-shared-'));
    share = join(base, 'export');
    mnt = join(base, 'mnt');
    await mkdir(share);
    await mkdir(mnt);
    assert.equal((await run('mount', ['--bind', share, mnt])).code, 0);
    await writeFile(join(base, 'ferry.yaml'), ['node: doc-a', 'heartbeatInterval: 200ms', 'nodeTimeout: 30s', 'pools:', '  nas:', `    path: ${mnt}`, '    shared: true'].join('\n'));
    f = await startFerryd({ dir: join(base, 'node'), extraArgs: ['--config', join(base, 'ferry.yaml'), '--node', 'doc-a'] });
  });
  after(async () => {
    await f?.destroy();
    await run('umount', [join(base, 'node', 'data', 'ro', 'ghost')]);
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('checks the mount and marker, link(2) and clocks of the share; names a node whose clock is off and a stale view', async () => {
    const healthy = await doctorJson();
    assert.equal(healthy.code, 0, JSON.stringify(problemsOf(healthy.checks)));
    const by = (checks: Check[], id: string) => checks.find((c) => c.check === id)!;
    assert.match(by(healthy.checks, 'pool:nas').message, new RegExp(`shared pool nas: \\S+ mounted at ${mnt}, marker present`));
    assert.match(by(healthy.checks, 'link:nas').message, /link\(2\) is atomic/);
    assert.match(by(healthy.checks, 'clocks:nas').message, /node clocks within \d+ ms of each other \(doc-a \(this host\)/);
    // another node's heartbeat written with a clock 5 s ahead (its time is 5 s later than the server's mtime)
    await writeFile(join(mnt, 'nodes', 'doc-b.json'), JSON.stringify({ node: 'doc-b', pid: 1, version: 'x', startedAt: new Date().toISOString(), lastSeen: new Date(Date.now() + 5000).toISOString(), intervalMs: 200 }));
    // a read-only view under DATA_DIR/ro that no volume uses
    const ghost = join(f.dataDir, 'ro', 'ghost');
    await mkdir(ghost, { recursive: true });
    await mkdir(join(base, 'empty'));
    assert.equal((await run('mount', ['--bind', join(base, 'empty'), ghost])).code, 0);
    const sick = await doctorJson();
    assert.equal(sick.code, 1);
    assert.deepEqual(problemsOf(sick.checks).map((c) => c.check), ['clocks:nas', `stale-mount:${ghost}`]);
    assert.match(by(sick.checks, 'clocks:nas').message, /node clocks differ by (4\.9|5\.0|5\.1) s .*doc-b \+(4\.9\d|5\.\d\d) s/);
    assert.equal(by(sick.checks, `stale-mount:${ghost}`).fix, `umount ${ghost}`);
    assert.equal(await unmountRetrying(ghost), 0);
    await rm(join(mnt, 'nodes', 'doc-b.json'));
    // the share goes away: the pool has no marker any more
    assert.equal(await unmountRetrying(mnt), 0, 'the share could be unmounted');
    const down = await doctorJson();
    assert.deepEqual(problemsOf(down.checks).map((c) => c.check), ['pool:nas']);
    assert.match(by(down.checks, 'pool:nas').message, /no \.ferry-pool marker in .*: the share is not mounted there/);
    assert.equal((await run('mount', ['--bind', share, mnt])).code, 0);
  });
});
