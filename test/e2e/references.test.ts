// `ferry volume rm` refuses, as `docker volume rm` does, while containers in any state reference the volume.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { until } from '../helpers/wait.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'volume removal against a real Docker engine');

describe('ferry volume rm and the containers that reference a volume', { skip }, () => {
  let base: string;
  let h: DockerHost;
  let f: Ferryd;
  const inspect = async (name: string) => JSON.parse((await f.cli('volume', 'inspect', name, '--json')).stdout);

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-e2e-refs-'));
    h = await startDockerHost({ name: 'refs' });
    f = await startFerryd({ dir: join(base, 'local'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('refuses while a stopped and a created container reference it, naming both; removes once they are gone', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'refs-data']);
    await h.dockerOk(['run', '--name', 'stopped', '--network', 'none', '-v', 'refs-data:/data', 'bb', 'sh', '-c', 'echo run >> /data/log; cat /data/log']);
    await h.dockerOk(['create', '--name', 'fresh', '--network', 'none', '-v', 'refs-data:/data', 'bb', 'cat', '/data/log']);
    await until('unmounted', async () => (await inspect('refs-data')).mounts === 0);

    const r = await f.cli('volume', 'rm', 'refs-data');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /volume refs-data is referenced by containers .* on this host/);
    assert.match(r.stderr, /stopped \(exited\)/);
    assert.match(r.stderr, /fresh \(created\)/);
    assert.match(r.stderr, /pass --force to remove it anyway/);
    const api = await f.cli('--json', 'volume', 'inspect', 'refs-data');
    assert.equal(api.code, 0, 'the volume is still there');
    assert.equal(JSON.parse(api.stdout).name, 'refs-data');
    // the stopped container starts again with its data: Docker never saw "no such volume"
    assert.equal(await h.dockerOk(['start', '-a', 'stopped']), 'run\nrun\n');
    assert.equal(await h.dockerOk(['start', '-a', 'fresh']), 'run\nrun\n');

    await h.dockerOk(['rm', 'stopped', 'fresh']);
    const ok = await f.cli('volume', 'rm', 'refs-data');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr, '', 'nothing overridden');
    assert.match((await f.cli('trash', 'ls')).stdout, /^refs-data@\d+\s+refs-data\s/m);
  });

  it('on a shared pool, refuses while a container on another live node references the volume', async () => {
    // node B serves this Docker engine (as driver "ferrysh"); node A has no engine at all (dockerHost none)
    const pool = join(base, 'nas');
    await mkdir(pool);
    await writeFile(join(pool, '.ferry-pool'), 'shared by the two test nodes\n');
    const node = async (n: string, extra: { pluginSocket?: string; dockerHost?: string }) => {
      const dir = join(base, n);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'ferry.yaml'), [`node: ${n}`, 'heartbeatInterval: 200ms', 'nodeTimeout: 2s', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${pool}`, '    shared: true'].join('\n'));
      return startFerryd({ dir, ...extra, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', n] });
    };
    const b = await node('nodeB', { pluginSocket: join(h.pluginDir, 'ferrysh.sock'), dockerHost: h.host });
    const a = await node('nodeA', {});
    try {
      await h.dockerOk(['volume', 'create', '-d', 'ferrysh', 'shared-refs']);
      await h.dockerOk(['run', '--name', 'on-b', '--network', 'none', '-v', 'shared-refs:/data', 'bb', 'sh', '-c', 'echo B > /data/who']);
      const published = async (present: boolean) => {
        const r = JSON.parse(await readFile(join(pool, 'references', 'nodeB.json'), 'utf8').catch(() => '{"volumes":{}}'));
        return present === Boolean(r.volumes?.['shared-refs']) && r.docker === 'ok';
      };
      await until('node B reports the reference', () => published(true));
      assert.match((await a.cli('status')).stdout, /^docker:\s+none \(no Docker engine on this host/m);

      const r = await a.cli('volume', 'rm', 'shared-refs');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /volume shared-refs is referenced by containers on-b \(exited\) on node nodeB/);
      // so is Docker's own removal on node A (`docker volume rm`, `compose down -v`): Docker looked at its own host only
      const byDocker = await a.plugin('Remove', { Name: 'shared-refs' });
      assert.match(String(byDocker.json.Err), /volume shared-refs is referenced by containers on-b \(exited\) on node nodeB: they would start on a new, empty volume/);
      // inspect on node A names them too (its own Docker has none)
      const seen = await a.cli('volume', 'inspect', 'shared-refs');
      assert.equal(seen.code, 0, 'still there');
      assert.match(seen.stdout, /^Referenced: on node nodeB by on-b \(exited\)$/m);
      assert.deepEqual(JSON.parse((await a.cli('--json', 'volume', 'inspect', 'shared-refs')).stdout).referencedElsewhere, [{ node: 'nodeB', containers: ['on-b (exited)'] }]);
      assert.equal(await h.dockerOk(['start', '-a', 'on-b']), '');
      assert.equal(await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'shared-refs:/data', 'bb', 'cat', '/data/who']), 'B\n');

      await h.dockerOk(['rm', 'on-b']);
      await until('node B reports no reference', () => published(false));
      const ok = await a.cli('volume', 'rm', 'shared-refs');
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(existsSync(join(pool, 'trash')), 'the data went to the trash of the pool');
    } finally {
      await h.docker(['volume', 'rm', '-f', 'shared-refs']); // Docker's own record, so its restart asks no gone plugin
      await a.destroy();
      await b.destroy();
    }
  });

  it('with the Docker engine stopped: refuses naming the reason; --force removes and says what it overrode', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'refs-down']);
    await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'refs-down:/data', 'bb', 'sh', '-c', 'echo down > /data/f']);
    const pid = h.pid;
    process.kill(pid, 'SIGTERM');
    // gone means exited (dockerd answers for a while during its shutdown), not only slow to answer
    await until('the engine has exited', async () => !existsSync(`/proc/${pid}`), 60_000);
    assert.notEqual((await h.docker(['version'], { timeoutMs: 5000 })).code, 0);
    try {
      const r = await f.cli('volume', 'rm', 'refs-down');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot tell whether containers on this host reference volume refs-down: the Docker engine at unix:\/\/\S+ did not answer \(.+\); start Docker .*or pass --force/);
      assert.equal((await f.cli('volume', 'inspect', 'refs-down')).code, 0, 'still there');

      const forced = await f.cli('--json', 'volume', 'rm', '--force', 'refs-down');
      assert.equal(forced.code, 0, forced.stderr);
      const [res] = JSON.parse(forced.stdout);
      assert.equal(res.removed, 'refs-down');
      assert.equal(res.overrode.length, 1);
      assert.match(res.overrode[0], /cannot tell whether containers on this host reference volume refs-down: the Docker engine at unix:\/\/\S+ did not answer/);
      assert.match((await f.cli('trash', 'ls')).stdout, /^refs-down@\d+\s+refs-down\s/m);
      const logs = await f.logs();
      assert.match(logs, /"volume":"refs-down".*"msg":"volume removed with --force although: cannot tell whether containers on this host reference volume refs-down/);

      // the table form prints the override on stderr
      await f.cli('volume', 'undelete', 'refs-down');
      const plain = await f.cli('volume', 'rm', '--force', 'refs-down');
      assert.equal(plain.code, 0);
      assert.match(plain.stderr, /^ferry: warning: --force overrode: cannot tell whether containers on this host reference volume refs-down/m);
    } finally {
      await h.restart();
    }
  });
});
