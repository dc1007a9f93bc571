/**
 * Ferry as a managed (v2) Docker plugin, end to end: `npm run plugin`'s directory is created and enabled
 * in a private Docker 20.10 engine, and the core scenarios run through it; then the move from the legacy
 * host daemon (same data dir) and an upgrade in place (disable, re-create under the same name, enable)
 * keep every volume, snapshot and trash entry. Figures (build, create, enable → first Get) are printed
 * as test diagnostics.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { ROOT, runFerry, startFerryd, run as runCmd } from '../helpers/ferryd.js';
import { until } from '../helpers/wait.js';
import { blobComposeFile } from '../helpers/compose.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const hasCompose = existsSync('/usr/bin/docker-compose');
const tools = ['strip', 'ldd'].filter((t) => !['/usr/bin', '/bin'].some((d) => existsSync(join(d, t))));
const missing = [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...tools.map((t) => `${t} (binutils / libc-bin, to build the plugin)`)];
const skip = skipUnless(missing, 'managed plugin end-to-end tests');

const PLUGIN = 'ferry'; // = ferry:latest; driver name `ferry` resolves to it, across rebuilds
const ms = (t0: number) => Math.round(performance.now() - t0);
const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
const composeFile = (driver: string) => blobComposeFile(driver, { uid: '999' });

describe('Ferry as a managed Docker plugin', { skip, timeout: 400_000 }, () => {
  let h: DockerHost;
  let pluginDir: string;
  let state: string; // the host directory the plugin's state mount shows (its ferry/ is the data dir)
  let dataDir: string;
  let hostMnt: string; // the host directory the plugin sees as /host/mnt (a share would be mounted there)
  const figures: Record<string, number | string> = {};
  const cli = (...args: string[]) => runFerry(['--plugin', dataDir, ...args]);
  const cliOk = async (...args: string[]) => {
    const r = await cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const run = (...args: string[]) => h.dockerOk(['run', '--rm', '--network', 'none', ...args]);
  const pluginMounts = async () => (await h.execOk('cat', ['/proc/self/mountinfo'])).split('\n').filter((l) => / \S*propagated-mount\/[^ ]+ /.test(l));

  /** create + settings + enable; returns ms from the enable call to the first Get Docker got answered (`docker volume inspect probe`). */
  async function installPlugin(dir: string, probe?: string): Promise<{ createMs: number; enableToGetMs: number }> {
    let t0 = performance.now();
    await h.dockerOk(['plugin', 'create', PLUGIN, dir], { timeoutMs: 180_000 });
    const createMs = ms(t0);
    await h.dockerOk(['plugin', 'set', PLUGIN, `state.source=${state}`, `host-run.source=${h.dir}`, `host-mnt.source=${hostMnt}`, 'FERRY_NODE=test-node']);
    t0 = performance.now();
    await h.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
    if (probe) await until('the first Get answered', async () => (await h.docker(['volume', 'inspect', probe])).code === 0, 30_000);
    return { createMs, enableToGetMs: ms(t0) };
  }

  before(async () => {
    h = await startDockerHost({ name: 'mplugin' });
    state = join(h.dir, 'state');
    dataDir = join(state, 'ferry');
    await mkdir(state);
    hostMnt = join(h.dir, 'mnt');
    await mkdir(join(hostMnt, 'backups'), { recursive: true });
    // the plugin's config file is the state mount's ferry/ferry.yaml, read when the plugin is enabled
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'backup.key'), 'a test secret for the managed plugin\n', { mode: 0o600 });
    await writeFile(join(dataDir, 'ferry.yaml'), 'backupPasswordFile: /host/var/lib/ferry/backup.key\n');
    pluginDir = join(h.dir, 'plugin-v1');
    const t0 = performance.now();
    const built = await runCmd(process.execPath, [join(ROOT, 'dist/tools/plugin-build.js'), '--out', pluginDir]);
    assert.equal(built.code, 0, built.stderr);
    figures.buildMs = ms(t0);
    figures.build = built.stdout.split('\n')[0]!;
  });
  after(async () => {
    process.stderr.write(`managed-plugin figures: ${JSON.stringify(figures)}\n`);
    await h?.stop();
  });

  it('moves from the legacy host daemon: volumes to the trash, plugin in, Docker restarted, undelete; data, labels, options kept', async () => {
    // the legacy install: a host ferryd on the same data dir, Docker finds it by /run/docker/plugins/ferry.sock
    const legacy = await startFerryd({ dir: join(h.dir, 'legacy'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, extraArgs: ['--data-dir', dataDir] });
    try {
      await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'uid=5', '--label', 'app=old', 'mp-legacy']);
      await run('-v', 'mp-legacy:/data', 'bb', 'sh', '-c', 'echo from-legacy > /data/f');
      // Docker records a legacy volume under driver `ferry`, a managed one under `ferry:latest`, and refuses
      // every use of a record whose driver name differs ("provided volume driver does not match stored
      // driver"): Docker's records go (to ferry's trash: the data stays) and come back through undelete
      await h.dockerOk(['volume', 'rm', 'mp-legacy']);
    } finally {
      assert.equal(await legacy.stop(), 0, 'the legacy ferryd stops cleanly (its socket goes with it)');
    }
    assert.ok(!existsSync(join(h.pluginDir, 'ferry.sock')));
    const r = await installPlugin(pluginDir);
    figures.createMs = r.createMs;
    figures.enableMs = r.enableToGetMs;
    // dockerd keeps a legacy driver it once used for its lifetime (moby caches v1 drivers by name, and
    // looks there first): until it restarts, `-d ferry` still means the dead socket
    const stale = await h.docker(['volume', 'create', '-d', 'ferry', 'mp-early'], { timeoutMs: 60_000 });
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /ferry\.sock/);
    const t0 = performance.now();
    await h.restart({ readyTimeoutMs: 60_000 });
    figures.dockerRestartMs = ms(t0);
    await cliOk('volume', 'undelete', 'mp-legacy');
    const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'mp-legacy']))[0];
    assert.equal(vi.Driver, 'ferry:latest');
    assert.deepEqual(vi.Labels, { app: 'old' });
    assert.deepEqual(vi.Options, { uid: '5' });
    assert.equal(await run('-v', 'mp-legacy:/data', 'bb', 'sh', '-c', 'cat /data/f; stat -c %u /data'), 'from-legacy\n5\n');
    assert.match(await h.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}']), /^ferry:latest true$/m);
  });

  it('creates with options, writes, reads from another container; Mountpoints lie under the propagated mount, dropped after use', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'uid=1000', '-o', 'mode=0750', '--label', 'team=db', 'mp-data']);
    await h.dockerOk(['run', '--name', 'writer', '--network', 'none', '-v', 'mp-data:/data', 'bb', 'sh', '-c', 'echo hello managed > /data/greeting && stat -c "%u %a" /data > /data/owner']);
    await h.dockerOk(['rm', 'writer']);
    assert.equal(await run('-v', 'mp-data:/data', 'bb', 'cat', '/data/greeting', '/data/owner'), 'hello managed\n1000 750\n');
    // the data is in the host's data dir, where the host daemon keeps it too
    assert.equal(await readFile(join(dataDir, 'volumes/mp-data/data/greeting'), 'utf8'), 'hello managed\n');
    const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'mp-data']))[0];
    assert.equal(vi.Driver, 'ferry:latest', '-d ferry is the plugin ferry:latest');
    assert.equal(vi.Mountpoint, '/mnt/volumes/mp-data', 'inside propagatedMount');
    assert.equal(vi.Status.pool, 'local');
    assert.deepEqual(vi.Labels, { team: 'db' });
    // (`run --rm` returns when the container exits; Docker removes it, and unmounts, right after)
    await until('no bind mount left in the propagated mount once no container uses a volume', async () => (await pluginMounts()).length === 0);
    // while a container runs: exactly one bind mount, visible to Docker under its data root
    await h.dockerOk(['run', '-d', '--name', 'sleeper', '--network', 'none', '-v', 'mp-data:/data', 'bb', 'sleep', '600']);
    // one bind mount, listed once per place the data root's shared peer group shows it (twice here)
    const m = await pluginMounts();
    assert.deepEqual([...new Set(m.map((l) => l.split(' ')[4]!.replace(/.*\/propagated-mount\//, '')))], ['mp-data'], m.join('\n'));
    const ls = await cliOk('volume', 'ls');
    assert.match(ls, /^mp-data\s+local\s+rwx\s+1\s/m);
    assert.match(ls, /^mp-legacy\s+local\s/m);
    const v = JSON.parse(await cliOk('--json', 'volume', 'inspect', 'mp-data'));
    assert.equal(v.mounts, 1);
    assert.deepEqual(v.containers.map((c: { name: string }) => c.name), ['sleeper'], "ferryd reaches Docker's API through the host-run mount");
    await h.dockerOk(['rm', '-f', 'sleeper']);
    await until('the last Unmount', async () => JSON.parse(await cliOk('--json', 'volume', 'inspect', 'mp-data')).mounts === 0);
    await until('the bind mount dropped', async () => (await pluginMounts()).length === 0);
  });

  it('ferry status and doctor say ferryd runs as a managed plugin; the CLI finds it with --plugin', async () => {
    const st = await cliOk('status');
    assert.match(st, /^runs as:\s+managed Docker plugin .*\/mnt\/volumes/m);
    assert.match(st, /^data dir:\s+\/host\/var\/lib\/ferry$/m);
    const s = JSON.parse(await cliOk('--json', 'status'));
    assert.equal(s.runsAs, 'managed-plugin');
    assert.equal(s.node, 'test-node');
    const doc = await cli('doctor');
    assert.match(doc.stdout, /runs as a managed Docker plugin/);
  });

  it('docker volume rm goes to the trash; ferry volume undelete brings it back to Docker', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'mp-oops']);
    await run('-v', 'mp-oops:/data', 'bb', 'sh', '-c', 'echo precious > /data/p');
    await h.dockerOk(['volume', 'rm', 'mp-oops']);
    assert.doesNotMatch(await h.dockerOk(['volume', 'ls', '-q']), /^mp-oops$/m);
    assert.match(await cliOk('trash', 'ls'), /^mp-oops@\d+\s+mp-oops\s+local/m);
    await cliOk('volume', 'undelete', 'mp-oops');
    await until('Docker knows mp-oops again', async () => /^mp-oops$/m.test(await h.dockerOk(['volume', 'ls', '-q'])));
    assert.equal(await run('-v', 'mp-oops:/data', 'bb', 'cat', '/data/p'), 'precious\n');
    // one entry left in the trash for the upgrade to keep
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'mp-gone']);
    await run('-v', 'mp-gone:/data', 'bb', 'sh', '-c', 'echo kept > /data/k');
    await h.dockerOk(['volume', 'rm', 'mp-gone']);
  });

  it("ferry volume create through the plugin's API puts the volume into Docker's store before it answers (Docker calls back into the plugin meanwhile)", async () => {
    const made = JSON.parse(await cliOk('--json', 'volume', 'create', 'mp-made', '-o', 'uid=7'));
    assert.deepEqual(made.registration, { registered: true });
    assert.equal((await h.dockerOk(['volume', 'inspect', '--format', '{{.Driver}}', 'mp-made'])).trim(), 'ferry:latest');
    assert.equal(await run('-v', 'mp-made:/data', 'bb', 'sh', '-c', 'echo made > /data/f && stat -c %u /data'), '7\n');
    await h.dockerOk(['volume', 'rm', 'mp-made']);
  });

  it('snapshots a volume and clones it with -o from=VOL@SNAP', async () => {
    await cliOk('snapshot', 'create', 'mp-data', '--name', 's1');
    await run('-v', 'mp-data:/data', 'bb', 'sh', '-c', 'echo changed > /data/greeting');
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'from=mp-data@s1', 'mp-clone']);
    assert.equal(await run('-v', 'mp-clone:/data', 'bb', 'cat', '/data/greeting'), 'hello managed\n');
    assert.equal(await run('-v', 'mp-data:/data', 'bb', 'cat', '/data/greeting'), 'changed\n');
  });

  it('backs up to a file:// target the plugin mounts (the host /mnt) and restores by URL with docker volume create -o backup=URL, byte for byte', async () => {
    // a host directory at /host/mnt inside the plugin: where an NFS share for backups would be mounted
    const target = 'file:///host/mnt/backups';
    assert.match(await cliOk('backup', 'init', '--target', target), /initialised an encrypted repository at file:\/\/\/host\/mnt\/backups/);
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'mp-bk']);
    await run('-v', 'mp-bk:/data', 'bb', 'sh', '-c', 'dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null && mkdir /data/sub && echo small > /data/sub/s && sha256sum /data/blob > /data/blob.sum');
    const src = join(dataDir, 'volumes/mp-bk/data');
    const sums = { blob: await sha256(join(src, 'blob')), s: await sha256(join(src, 'sub/s')) };
    const url = (await cliOk('backup', 'create', 'mp-bk', '--target', target)).trim();
    assert.match(url, /^file:\/\/\/host\/mnt\/backups\?backup=[0-9a-f]+&volume=mp-bk$/);
    // the repository is on the host, in the directory given as host-mnt.source
    assert.ok((await readdir(join(hostMnt, 'backups'))).length > 0, 'the repository lies in the host directory');
    // the restore runs inside Docker's Create call
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '--opt', `backup=${url}`, 'mp-restored'], { timeoutMs: 120_000 });
    const dst = join(dataDir, 'volumes/mp-restored/data');
    assert.equal(await sha256(join(dst, 'blob')), sums.blob);
    assert.equal(await sha256(join(dst, 'sub/s')), sums.s);
    assert.equal(await run('-v', 'mp-restored:/data', 'bb', 'sh', '-c', 'cd /data && sha256sum -c blob.sum && cat sub/s'), '/data/blob: OK\nsmall\n');
    await h.dockerOk(['volume', 'rm', 'mp-bk', 'mp-restored']);
  });

  it('Compose (docker-compose 1.29) with the plugin: up, down and up, down -v and undelete and up keep the data; driver: ferry:latest, since a second up with driver: ferry is refused', { skip: hasCompose ? false : 'docker-compose (Debian package docker-compose) not installed' }, async () => {
    const dir = join(h.dir, 'compose');
    await mkdir(dir);
    const compose = async (...args: string[]) => {
      const r = await h.compose(args, { cwd: dir, projectName: 'mshop' });
      assert.equal(r.code, 0, `docker-compose ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const blob = join(dataDir, 'volumes/mshop_pgdata/data/blob');
    const written = async () => until('the service wrote its data', async () => (await h.docker(['exec', 'mshop_db_1', 'test', '-s', '/data/blob.sum'])).code === 0, 30_000);
    const checked = async () => assert.equal((await h.dockerOk(['exec', 'mshop_db_1', 'sha256sum', '-c', '/data/blob.sum'])).trim(), '/data/blob: OK');
    try {
      // Docker records the managed plugin's volumes under driver `ferry:latest`, and docker-compose 1.29 compares a
      // volume's recorded driver with the file's: `driver: ferry` creates the volume, but the next `up` refuses it
      await writeFile(join(dir, 'docker-compose.yml'), composeFile('ferry'));
      await compose('up', '-d');
      await written();
      await compose('down');
      const refused = await h.compose(['up', '-d'], { cwd: dir, projectName: 'mshop' });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /specifies driver ferry, but a volume with the same name uses a different driver \(ferry:latest\)/);
      await compose('down', '-v');

      // with the plugin's full name every step works
      await writeFile(join(dir, 'docker-compose.yml'), composeFile('ferry:latest'));
      await compose('up', '-d');
      await written();
      const first = await sha256(blob);
      assert.equal(JSON.parse(await h.dockerOk(['volume', 'inspect', 'mshop_pgdata']))[0].Driver, 'ferry:latest');
      await compose('down');
      await compose('up', '-d');
      await written();
      await checked();
      assert.equal(await sha256(blob), first, 'down and up: the same bytes');
      // ferryd learns the labels Compose set (from Docker, after the Create), which undelete gives back
      await until('labels learned', async () => JSON.parse(await cliOk('--json', 'volume', 'inspect', 'mshop_pgdata')).docker?.labels?.['com.docker.compose.project'] === 'mshop', 30_000);
      await compose('down', '-v');
      assert.doesNotMatch(await h.dockerOk(['volume', 'ls', '-q']), /mshop_pgdata/);
      // (--json: the table fits 80 columns by shortening cells, which ones depends on how long ago things were removed)
      assert.ok((JSON.parse(await cliOk('--json', 'trash', 'ls')) as Array<{ id: string; name: string }>).some((x) => x.name === 'mshop_pgdata' && /^mshop_pgdata@\d+$/.test(x.id)));
      await cliOk('volume', 'undelete', 'mshop_pgdata');
      const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'mshop_pgdata']))[0];
      assert.equal(vi.Driver, 'ferry:latest');
      assert.equal(vi.Labels['com.docker.compose.project'], 'mshop');
      assert.deepEqual(vi.Options, { uid: '999' });
      const again = await compose('up', '-d');
      assert.doesNotMatch(again.stderr, /not created by Docker Compose|different/);
      await written();
      await checked();
      assert.equal(await sha256(blob), first, 'down -v, undelete, up: the same bytes, not a fresh write');
      assert.equal((await h.dockerOk(['exec', 'mshop_db_1', 'stat', '-c', '%u', '/data'])).trim(), '999');
      await compose('down', '-v');
    } finally {
      await h.compose(['down'], { cwd: dir, projectName: 'mshop' });
    }
  });

  it('Docker restarts: the plugin comes back with it and a --restart always container runs again on its volume', async () => {
    await h.dockerOk(['run', '-d', '--name', 'keeper', '--restart', 'always', '--network', 'none', '-v', 'mp-data:/data', 'bb', 'sh', '-c', 'echo start >> /data/starts; exec sleep 600']);
    await until('keeper started once', async () => existsSync(join(dataDir, 'volumes/mp-data/data/starts')));
    const t0 = performance.now();
    await h.restart({ readyTimeoutMs: 60_000 });
    await until('keeper running again', async () => (await h.dockerOk(['inspect', '-f', '{{.State.Running}}', 'keeper'])).trim() === 'true', 60_000);
    await until('its second start written', async () => (await readFile(join(dataDir, 'volumes/mp-data/data/starts'), 'utf8')) === 'start\nstart\n', 20_000);
    figures.dockerRestartToContainerRunningMs = ms(t0);
    assert.match(await h.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}']), /^ferry:latest true$/m);
  });

  it('upgrade in place: disable while a container runs (it keeps its data), re-create under the same name, enable; volumes, snapshots, trash kept', async () => {
    // Docker counts every volume of the driver as a reference: plain disable is refused while any exists
    const refused = await h.docker(['plugin', 'disable', PLUGIN]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /in use/);
    figures.disableRefusal = refused.stderr.trim();
    const oldId = (await h.dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).trim();
    await h.dockerOk(['plugin', 'disable', '-f', PLUGIN]);
    // keeper (restart always) still runs and writes into the host's data dir while ferryd is away
    assert.equal((await h.dockerOk(['inspect', '-f', '{{.State.Running}}', 'keeper'])).trim(), 'true');
    await h.dockerOk(['exec', 'keeper', 'sh', '-c', 'echo during-upgrade > /data/during']);
    assert.equal(await readFile(join(dataDir, 'volumes/mp-data/data/during'), 'utf8'), 'during-upgrade\n');
    await h.dockerOk(['plugin', 'rm', '-f', PLUGIN]);
    // the "new version": another build, here marked by its description
    const v2 = join(h.dir, 'plugin-v2');
    const built = await runCmd(process.execPath, [join(ROOT, 'dist/tools/plugin-build.js'), '--out', v2, '--no-gluster']);
    assert.equal(built.code, 0, built.stderr);
    const cfg = JSON.parse(await readFile(join(v2, 'config.json'), 'utf8'));
    cfg.description = `${cfg.description} [v2 for the upgrade test]`;
    await writeFile(join(v2, 'config.json'), JSON.stringify(cfg));
    const r = await installPlugin(v2, 'mp-data');
    figures.reenableToFirstGetMs = r.enableToGetMs;
    assert.notEqual((await h.dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).trim(), oldId);
    assert.match(await h.dockerOk(['plugin', 'inspect', '-f', '{{.Config.Description}}', PLUGIN]), /v2 for the upgrade test/);
    // everything is still there
    const names = (await h.dockerOk(['volume', 'ls', '-q'])).split('\n').filter(Boolean).sort();
    for (const v of ['mp-clone', 'mp-data', 'mp-legacy', 'mp-oops']) assert.ok(names.includes(v), `${v} in ${names.join(',')}`);
    assert.match(await cliOk('snapshot', 'ls', 'mp-data'), /\bs1\b/);
    assert.match(await cliOk('trash', 'ls'), /^mp-gone@\d+\s+mp-gone/m);
    const inUse = JSON.parse(await cliOk('--json', 'volume', 'inspect', 'mp-data'));
    assert.equal(inUse.mounts, 1, "keeper's Mount, acknowledged before the upgrade, is still counted");
    // keeper's Unmount reaches the new ferryd and is matched; a new container mounts through the new plugin
    await h.dockerOk(['rm', '-f', 'keeper']);
    await until('keeper unmounted', async () => JSON.parse(await cliOk('--json', 'volume', 'inspect', 'mp-data')).mounts === 0);
    assert.equal(await run('-v', 'mp-data:/data', 'bb', 'cat', '/data/during', '/data/greeting'), 'during-upgrade\nchanged\n');
    await cliOk('volume', 'undelete', 'mp-gone');
    await until('Docker knows mp-gone again', async () => /^mp-gone$/m.test(await h.dockerOk(['volume', 'ls', '-q'])));
    assert.equal(await run('-v', 'mp-gone:/data', 'bb', 'cat', '/data/k'), 'kept\n');
  });

  it('back to the legacy host daemon: volumes to the trash, plugin removed, host ferryd started, undelete', async () => {
    await until('no container left (run --rm removes them just after they exit)', async () => (await h.dockerOk(['ps', '-aq'])).trim() === '').catch(async (err) => {
      throw new Error(`${String(err)}: ${await h.dockerOk(['ps', '-a', '--no-trunc'])}`);
    });
    const names = (await h.dockerOk(['volume', 'ls', '-q', '--filter', 'driver=ferry:latest'])).split('\n').filter(Boolean);
    await h.dockerOk(['volume', 'rm', ...names]);
    await h.dockerOk(['plugin', 'disable', PLUGIN]); // no volume left: a plain disable works
    await h.dockerOk(['plugin', 'rm', PLUGIN]);
    const legacy = await startFerryd({ dir: join(h.dir, 'legacy'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, extraArgs: ['--data-dir', dataDir] });
    try {
      for (const n of names) assert.equal((await legacy.cli('volume', 'undelete', n)).code, 0, n);
      // no Docker restart needed this way: Docker does not keep a managed driver it no longer has
      assert.equal(await run('-v', 'mp-data:/data', 'bb', 'cat', '/data/during'), 'during-upgrade\n');
      const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'mp-clone']))[0];
      assert.equal(vi.Driver, 'ferry');
      assert.equal(vi.Mountpoint, join(dataDir, 'volumes/mp-clone/data'), 'the host daemon answers its own paths (no mount root)');
    } finally {
      await legacy.stop();
    }
  });
});
