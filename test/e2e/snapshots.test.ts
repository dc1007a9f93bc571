import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'snapshot end-to-end tests with a real Docker engine');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('snapshots and history under a real Docker engine', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  const cat = (vol: string, file: string) => h.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, 'bb', 'cat', `/data/${file}`]);
  const write = (vol: string, file: string, text: string) => h.dockerOk(['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, 'bb', 'sh', '-c', `echo ${text} > /data/${file}`]);
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  /** Files of a snapshot as a user reads them: from a clone of it, removed afterwards. */
  let views = 0;
  const snapshotFiles = async (vol: string, snap: string, files: string[]) => {
    const name = `view-${views++}`;
    await ok('volume', 'create', name, '-o', `from=${vol}@${snap}`);
    try {
      return files.map((file) => {
        const p = join(f.dataDir, 'volumes', name, 'data', file);
        return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
      });
    } finally {
      await ok('volume', 'rm', '--purge', name);
    }
  };

  before(async () => {
    h = await startDockerHost({ name: 'snap' });
    f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
  });

  it('with --pause, a snapshot of a volume being written is one point in time', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'busy']);
    // x is always written before y, each atomically by rename: at any instant x - y is 0 or 1
    await h.dockerOk(['run', '-d', '--name', 'pair-writer', '--network', 'none', '--stop-timeout', '1', '-v', 'busy:/data', 'bb', 'sh', '-c',
      'i=0; while :; do echo $i > /data/x.t && mv /data/x.t /data/x; echo $i > /data/y.t && mv /data/y.t /data/y; i=$((i+1)); done']);
    await sleep(300);
    for (let k = 0; k < 5; k++) {
      const s = JSON.parse(await ok('--json', 'snapshot', 'create', 'busy', '--pause'));
      assert.equal(s.consistency, 'paused');
      const [x, y] = (await snapshotFiles('busy', s.id, ['x', 'y'])).map(Number) as [number, number];
      assert.ok(x - y === 0 || x - y === 1, `snapshot ${k}: x=${x} y=${y} is not one instant`);
      const state = JSON.parse(await h.dockerOk(['inspect', 'pair-writer']))[0].State;
      assert.equal(state.Status, 'running', 'the container is unpaused after the snapshot');
    }
    // without --pause: crash-consistent, and never a failure because files come and go meanwhile
    for (let k = 0; k < 8; k++) {
      const s = JSON.parse(await ok('--json', 'snapshot', 'create', 'busy'));
      assert.equal(s.consistency, s.method === 'btrfs' ? 'crash' : 'file-by-file', 'the record claims one instant only where the method gives one');
      const [x] = await snapshotFiles('busy', s.id, ['x']);
      assert.match(x ?? '', /^\d+\n$/, 'every file in the snapshot is whole');
    }
    const before = Number(await h.dockerOk(['exec', 'pair-writer', 'cat', '/data/x']));
    await sleep(200);
    assert.ok(Number(await h.dockerOk(['exec', 'pair-writer', 'cat', '/data/x'])) > before, 'and keeps writing');
  });

  it('runs --exec in the containers first, and aborts the snapshot when it fails', async () => {
    const s = JSON.parse(await ok('--json', 'snapshot', 'create', 'busy', '--exec', 'echo flushed > /data/flush-marker'));
    assert.equal(s.consistency, 'exec');
    assert.deepEqual(await snapshotFiles('busy', s.id, ['flush-marker']), ['flushed\n']);
    const n = JSON.parse(await ok('--json', 'snapshot', 'ls', 'busy')).length;
    const bad = await f.cli('snapshot', 'create', 'busy', '--exec', 'exit 3');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--exec "exit 3" failed in container pair-writer with exit code 3; no snapshot taken/);
    assert.equal(JSON.parse(await ok('--json', 'snapshot', 'ls', 'busy')).length, n);
    await h.dockerOk(['rm', '-f', 'pair-writer']);
    // no container runs on the volume any more: nothing to run the command in, and the user is told so
    const idle = await f.cli('snapshot', 'create', 'busy', '--exec', 'echo flushed > /data/flush-marker-2', '--name', 'idle');
    assert.equal(idle.code, 0, idle.stderr);
    assert.match(idle.stderr, /no running container uses busy: --exec ran nowhere; the snapshot is of the data as it was/);
    assert.equal(JSON.parse(await ok('--json', 'snapshot', 'inspect', 'busy', 'idle')).consistency, 'crash', 'the record claims no flush');
  });

  it('plays a dvol-style session through containers: commit, branch, checkout, reset HEAD^', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'app-db']);
    await write('app-db', 'schema', 'v1');
    await ok('commit', 'app-db', '-m', 'schema v1');
    await write('app-db', 'schema', 'v2');
    await ok('commit', 'app-db', '-m', 'schema v2');
    await ok('checkout', '-b', 'app-db', 'feature');
    assert.equal(await cat('app-db', 'schema'), 'v2\n');
    await write('app-db', 'schema', 'v3-feature');
    await ok('commit', 'app-db', '-m', 'feature work');
    await ok('checkout', 'app-db', 'master');
    assert.equal(await cat('app-db', 'schema'), 'v2\n');
    await ok('reset', 'app-db', '--hard', 'HEAD^');
    assert.equal(await cat('app-db', 'schema'), 'v1\n');
    await ok('checkout', 'app-db', 'feature');
    assert.equal(await cat('app-db', 'schema'), 'v3-feature\n');
    const log = JSON.parse(await ok('--json', 'log', 'app-db'));
    assert.deepEqual(log.commits.map((c: { message: string }) => c.message), ['feature work', 'schema v2', 'schema v1']);
    // the mountpoint Docker sees never changed
    const mp = JSON.parse(await h.dockerOk(['volume', 'inspect', 'app-db']))[0].Mountpoint;
    assert.equal(mp, join(f.dataDir, 'volumes', 'app-db', 'data'));
  });

  it('refuses to switch a volume containers use, naming them; --restart-containers stops, switches and starts them', async () => {
    await h.dockerOk(['run', '-d', '--name', 'db-server', '--network', 'none', '--stop-timeout', '1', '-v', 'app-db:/data', 'bb', 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.1; done']);
    const r = await f.cli('checkout', 'app-db', 'master');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /volume app-db is in use by db-server; stop it first, or pass --restart-containers/);
    assert.equal(await cat('app-db', 'schema'), 'v3-feature\n', 'nothing changed');
    await ok('checkout', 'app-db', 'master', '--restart-containers');
    const state = JSON.parse(await h.dockerOk(['inspect', 'db-server']))[0].State;
    assert.equal(state.Status, 'running', 'started again');
    assert.equal(await h.dockerOk(['exec', 'db-server', 'cat', '/data/schema']), 'v1\n', 'and it sees the switched data');
    // a name that does not exist, or the branch it is on: refused or done before any container is stopped
    const started = () => h.dockerOk(['inspect', '-f', '{{.State.StartedAt}} {{.State.Pid}}', 'db-server']);
    const was = await started();
    for (const [args, want] of [
      [['snapshot', 'restore', 'app-db', 'no-such-snap'], /volume app-db has no snapshot "no-such-snap"/],
      [['reset', 'app-db', '--hard', 'deadbeef'], /no commit "deadbeef" in the history of app-db/],
      [['checkout', 'app-db', 'no-such-branch'], /volume app-db has no branch no-such-branch/],
    ] as const) {
      const bad = await f.cli(...args, '--restart-containers');
      assert.equal(bad.code, 1, args.join(' '));
      assert.match(bad.stderr, want);
    }
    await ok('checkout', 'app-db', 'master', '--restart-containers');
    assert.equal(await started(), was, 'the container ran on, never stopped');
    assert.equal(await h.dockerOk(['exec', 'db-server', 'cat', '/data/schema']), 'v1\n');
    await h.dockerOk(['rm', '-f', 'db-server']);
    // a mount no running container holds, beside a container that is stopped but not removed (as when it stopped
    // while ferryd was down and its Unmount was lost): said as it is, and nothing is stopped, started or changed
    await h.dockerOk(['run', '--name', 'db-stopped', '--network', 'none', '-v', 'app-db:/data', 'bb', 'true']);
    await f.plugin('Mount', { Name: 'app-db', ID: 'unheard-unmount' });
    const stale = await f.cli('checkout', 'app-db', 'feature', '--restart-containers');
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /volume app-db is mounted \(1 mount\) but no container using it runs: .*ferryd drops by itself within a minute or two/);
    assert.equal(JSON.parse(await h.dockerOk(['inspect', 'db-stopped']))[0].State.Status, 'exited', 'left as it was');
    assert.equal(await cat('app-db', 'schema'), 'v1\n', 'still on master');
    await f.plugin('Unmount', { Name: 'app-db', ID: 'unheard-unmount' });
    await h.dockerOk(['rm', 'db-stopped']);
    // a container run with --rm would be removed by its stop, never to start again: refused before anything stops
    await h.dockerOk(['run', '-d', '--rm', '--name', 'db-once', '--network', 'none', '--stop-timeout', '1', '-v', 'app-db:/data', 'bb', 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.1; done']);
    const once = await f.cli('checkout', 'app-db', 'feature', '--restart-containers');
    assert.equal(once.code, 1);
    assert.match(once.stderr, /in use by db-once, started with --rm: .*nothing changed/);
    assert.equal(JSON.parse(await h.dockerOk(['inspect', 'db-once']))[0].State.Status, 'running', 'still running');
    assert.equal(await h.dockerOk(['exec', 'db-once', 'cat', '/data/schema']), 'v1\n', 'on master still');
    await h.dockerOk(['rm', '-f', 'db-once']);
  });

  it('clones a snapshot with `docker volume create --opt from=VOL@SNAP`', async () => {
    await ok('snapshot', 'create', 'app-db', '--name', 'golden');
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '--opt', 'from=app-db@golden', 'app-db-copy']);
    assert.equal(await cat('app-db-copy', 'schema'), 'v1\n');
    await write('app-db-copy', 'schema', 'changed-in-clone');
    assert.equal(await cat('app-db', 'schema'), 'v1\n', 'the source is untouched');
    const snaps = readdirSync(join(f.dataDir, 'volumes', 'app-db', 'snapshots'));
    assert.ok(snaps.length > 0);
  });
});
