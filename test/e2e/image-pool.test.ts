/**
 * Image volumes under a real Docker engine: a container that writes past the volume's size gets ENOSPC and
 * nothing else breaks; SQLite with concurrent writers in two containers of one host passes its integrity check
 * (a real local filesystem: POSIX locks and fsync); the image is detached when the last container is gone.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { importBinaryImage } from '../helpers/binary-image.js';
import { skipUnless } from '../helpers/prereq.js';
import { until } from '../helpers/wait.js';

const skip = skipUnless([...dockerHostPrerequisites().missing, ...(existsSync('/usr/bin/sqlite3') ? [] : ['/usr/bin/sqlite3 (apt-get install sqlite3)'])], 'image volumes under Docker');

describe('image volumes under a real Docker engine', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  let pool: string;

  /** Is the volume's image mounted in the engine's mount namespace (where ferryd runs)? */
  const attached = async (v: string) => (await h.exec('findmnt', ['-n', join(pool, 'volumes', v, 'data')])).code === 0;

  before(async () => {
    h = await startDockerHost({ name: 'img' });
    await importBinaryImage(h, 'sqlite:latest', ['/usr/bin/sqlite3']);
    pool = join(h.dir, 'images');
    await writeFile(join(h.dir, 'ferry.yaml'), ['pools:', '  img:', '    kind: image', `    path: ${pool}`].join('\n'));
    // ferryd mounts the images: it runs in the engine's mount namespace, as a plugin of that host would
    f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, prefix: ['nsenter', '-t', String(h.pid), '-m', '--'], extraArgs: ['--config', join(h.dir, 'ferry.yaml')] });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
    // (the reboot case starts ferryd again on the same directory, which destroy() then leaves)
    if (f) await rm(f.dir, { recursive: true, force: true });
  });

  it('a container writing past the size gets ENOSPC; what it wrote before stays; the next container works', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=img', '-o', 'size=48M', 'full']);
    const r = await h.docker(['run', '--rm', '--network', 'none', '-v', 'full:/data', 'bb', 'sh', '-c', 'echo kept > /data/first && dd if=/dev/zero of=/data/big bs=1M count=200; echo "dd exit $?"; df -k /data | tail -1']);
    assert.match(r.stdout + r.stderr, /No space left on device/);
    assert.match(r.stdout, /dd exit 1/);
    assert.equal(await attached('full'), false, 'detached when the container is gone');
    const after = await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'full:/data', 'bb', 'sh', '-c', 'cat /data/first; rm /data/big; echo more > /data/second; cat /data/second']);
    assert.equal(after, 'kept\nmore\n');
    const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'full']))[0];
    assert.equal(vi.Status.pool, 'img');
  });

  it('SQLite: two containers write one database at once; the integrity check passes and no row is lost', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=img', '-o', 'size=64M', 'sq']);
    await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'sq:/data', 'sqlite', 'sqlite3', '/data/db.sqlite', 'PRAGMA journal_mode=WAL; CREATE TABLE t (writer TEXT, n INTEGER, pad TEXT);']);
    const writer = (name: string) =>
      h.dockerOk([
        'run', '--name', name, '--network', 'none', '-v', 'sq:/data', 'sqlite', 'sh', '-c',
        `for i in $(seq 1 400); do sqlite3 -cmd '.timeout 20000' /data/db.sqlite "BEGIN IMMEDIATE; INSERT INTO t VALUES ('${name}', $i, hex(randomblob(512))); COMMIT;" || exit 1; done`,
      ], { timeoutMs: 300_000 });
    await Promise.all([writer('w1'), writer('w2')]);
    // exited, not removed: Docker unmounted the volume when they stopped, and the image went with it
    assert.equal(await attached('sq'), false);
    const check = await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'sq:/data', 'sqlite', 'sqlite3', '/data/db.sqlite', 'PRAGMA integrity_check; SELECT writer, count(*), count(DISTINCT n) FROM t GROUP BY writer ORDER BY writer;']);
    assert.equal(check, 'ok\nw1|400|400\nw2|400|400\n');
    // they did write at the same time: the rows of the two writers interleave
    const switches = Number(await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'sq:/data', 'sqlite', 'sqlite3', '/data/db.sqlite', 'SELECT count(*) FROM (SELECT writer, lag(writer) OVER (ORDER BY rowid) AS prev FROM t) WHERE writer != prev;']));
    assert.ok(switches >= 10, `the writers took turns ${switches} times`);
    await h.dockerOk(['rm', 'w1', 'w2']);
    await h.dockerOk(['volume', 'rm', 'sq', 'full']);
  });

  it('a reboot with Docker up before ferryd: a --restart always container on an image volume comes back with its data', async (t) => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=img', '-o', 'size=32M', 'bootdb']);
    const boots = async () => (await h.docker(['exec', 'bootsvc', 'cat', '/data/boots'])).stdout.trim().split('\n').filter(Boolean).length;
    await h.dockerOk(['run', '-d', '--name', 'bootsvc', '--restart', 'always', '--network', 'none', '-v', 'bootdb:/data', 'bb', 'sh', '-c',
      'test -f /data/blob || { dd if=/dev/urandom of=/data/blob bs=64k count=8 2>/dev/null; sha256sum /data/blob > /data/blob.sum; }; date +%s >> /data/boots; exec sleep 3600']);
    await until('the first boot is written', async () => (await boots()) === 1);
    const sum = await h.dockerOk(['exec', 'bootsvc', 'cat', '/data/blob.sum']);
    // the host reboots: the engine comes back in a new mount namespace (the image's mount is gone with the old one),
    // ferryd not yet
    await f.stop();
    await h.restart({ readyTimeoutMs: 300_000 });
    const down = JSON.parse(await h.dockerOk(['inspect', '--format', '{{json .State}}', 'bootsvc']));
    assert.equal(down.Running, false, 'Docker could not start it without the plugin');
    const t1 = Date.now();
    f = await startFerryd({ dir: f.dir, pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, prefix: ['nsenter', '-t', String(h.pid), '-m', '--'], extraArgs: ['--config', join(h.dir, 'ferry.yaml')] });
    await until('bootsvc running again', async () => JSON.parse(await h.dockerOk(['inspect', '--format', '{{json .State}}', 'bootsvc'])).Running, 60_000);
    t.diagnostic(`ferryd start to the container running on its image volume: ${Date.now() - t1} ms`);
    await until('the second boot is written', async () => (await boots()) === 2);
    assert.match(await h.dockerOk(['exec', 'bootsvc', 'sha256sum', '-c', '/data/blob.sum']), /blob: OK/, 'the data of before the reboot, byte for byte');
    assert.equal(await h.dockerOk(['exec', 'bootsvc', 'cat', '/data/blob.sum']), sum);
    assert.equal(await attached('bootdb'), true);
    await h.dockerOk(['rm', '-f', 'bootsvc']);
    await until('detached once the container is gone', async () => !(await attached('bootdb')));
    await h.dockerOk(['volume', 'rm', 'bootdb']);
  });
});

/**
 * Two Docker hosts, one share: an image volume a container on host A wrote is read byte for byte by a container on
 * host B; while a container on A holds it (running, then stopped but not removed), B is refused with A's name.
 */
describe('image volumes on a share, moving between two Docker hosts', { skip }, () => {
  const hosts: Array<{ h: DockerHost; f: Ferryd }> = [];
  let share: string;

  before(async () => {
    for (const name of ['A', 'B']) {
      const h = await startDockerHost({ name: `imgsh${name}` });
      hosts.push({ h, f: undefined as unknown as Ferryd });
      await importBinaryImage(h, 'sqlite:latest', ['/usr/bin/sqlite3']);
    }
    // the share: a directory both hosts' mount namespaces see (what an NFS mount is on real hosts)
    share = join(hosts[0]!.h.dir, 'nas');
    await mkdir(share);
    await writeFile(join(share, '.ferry-pool'), 'a directory the test hosts share\n');
    for (const [i, x] of hosts.entries()) {
      const node = `node${'AB'[i]}`;
      await writeFile(join(x.h.dir, 'ferry.yaml'), [`node: ${node}`, 'heartbeatInterval: 200ms', 'nodeTimeout: 2s', 'pools:', '  nas:', '    kind: image', '    shared: true', `    path: ${share}`].join('\n'));
      x.f = await startFerryd({ pluginSocket: join(x.h.pluginDir, 'ferry.sock'), dockerHost: x.h.host, prefix: ['nsenter', '-t', String(x.h.pid), '-m', '--'], extraArgs: ['--config', join(x.h.dir, 'ferry.yaml'), '--node', node] });
    }
  });
  after(async () => {
    for (const x of hosts) {
      await x.h.stop().catch(() => undefined);
      await x.f?.destroy().catch(() => undefined);
    }
  });

  it('a database written on host A is read whole on host B; B is refused while a container on A holds it', async () => {
    const [a, b] = [hosts[0]!.h, hosts[1]!.h];
    await a.dockerOk(['volume', 'create', '-d', 'ferry', '-o', 'pool=nas', '-o', 'size=64M', 'shdb']);
    await a.dockerOk(['run', '--rm', '--network', 'none', '-v', 'shdb:/data', 'sqlite', 'sqlite3', '/data/db.sqlite',
      "CREATE TABLE t (n INTEGER, pad TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) INSERT INTO t SELECT i, hex(randomblob(256)) FROM c;"]);
    const digest = await a.dockerOk(['run', '--rm', '--network', 'none', '-v', 'shdb:/data', 'sqlite', 'sh', '-c', 'sqlite3 /data/db.sqlite "SELECT count(*), sum(length(pad)) FROM t;" && md5sum /data/db.sqlite']);
    // a container on A that is stopped but not removed no longer holds it (Docker unmounted it when it stopped)
    await a.dockerOk(['run', '-d', '--name', 'holder', '--network', 'none', '-v', 'shdb:/data', 'sqlite', 'sleep', '600']);
    const refused = await b.docker(['run', '--rm', '--network', 'none', '-v', 'shdb:/data', 'sqlite', 'true']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /volume shdb is rwo \(one host at a time\) and node nodeA holds it/);
    await a.dockerOk(['stop', '-t', '1', 'holder']);
    const onB = await b.dockerOk(['run', '--rm', '--network', 'none', '-v', 'shdb:/data', 'sqlite', 'sh', '-c', 'sqlite3 /data/db.sqlite "PRAGMA integrity_check;" && sqlite3 /data/db.sqlite "SELECT count(*), sum(length(pad)) FROM t;" && md5sum /data/db.sqlite']);
    assert.equal(onB, `ok\n${digest}`, 'host B reads the database A wrote, byte for byte');
    await a.dockerOk(['rm', 'holder']);
    // Docker's removal on B is refused while A reports a container that references the volume; A reports the
    // container gone at its next heartbeat
    await until('B removes the volume once A no longer reports holder', async () => (await b.docker(['volume', 'rm', 'shdb'])).code === 0, 15_000);
  });
});
