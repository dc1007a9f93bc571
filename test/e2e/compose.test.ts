// After `docker-compose down -v`, `ferry volume undelete` gives Docker back the labels and options Compose needs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { blobComposeFile } from '../helpers/compose.js';
import { until } from '../helpers/wait.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const missing = [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...(existsSync('/usr/bin/docker-compose') ? [] : ['docker-compose (Debian package docker-compose)'])];
const skip = skipUnless(missing, "undelete of a Compose project's volume with Debian's docker-compose");

const COMPOSE_FILE = blobComposeFile('ferry', { uid: '999', mode: '0770' });

describe('docker-compose down -v, then ferry volume undelete, then docker-compose up', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  let dir: string;
  const compose = (...args: string[]) => h.compose(args, { cwd: dir, projectName: 'shop' });
  const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-compose-'));
    await writeFile(join(dir, 'docker-compose.yml'), COMPOSE_FILE);
    h = await startDockerHost({ name: 'compose' });
    f = await startFerryd({ dir: join(dir, 'ferryd'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
  });
  after(async () => {
    if (h && dir) await compose('down').catch(() => undefined);
    await h?.stop();
    await f?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('restores the volume with its labels and driver options, and Compose uses it with the data byte for byte', async () => {
    const up = await compose('up', '-d');
    assert.equal(up.code, 0, up.stderr);
    const blob = join(f.dataDir, 'volumes', 'shop_pgdata', 'data', 'blob');
    await until('data written', async () => (await h.docker(['exec', 'shop_db_1', 'test', '-s', '/data/blob.sum'])).code === 0, 30_000);
    const before = await sha256(blob);
    // ferryd learns from Docker, after the Create, what Docker keeps to itself
    const learned = await until('labels learned', async () => {
      const v = JSON.parse((await f.cli('--json', 'volume', 'inspect', 'shop_pgdata')).stdout);
      return v.docker?.labels?.['com.docker.compose.project'] ? v.docker : undefined;
    }, 30_000);
    assert.equal(learned.driver, 'ferry');
    assert.deepEqual(learned.options, { uid: '999', mode: '0770' });
    assert.equal(learned.labels['com.docker.compose.volume'], 'pgdata');

    const down = await compose('down', '-v');
    assert.equal(down.code, 0, down.stderr);
    assert.doesNotMatch(await h.dockerOk(['volume', 'ls', '-q']), /shop_pgdata/);
    assert.match((await f.cli('trash', 'ls')).stdout, /^shop_pgdata@\d+\s+shop_pgdata\s+local\s+shop\/pgdata\s/m);

    const un = await f.cli('volume', 'undelete', 'shop_pgdata');
    assert.equal(un.code, 0, un.stderr);
    assert.match(un.stdout, /^shop_pgdata\nDocker knows it again \(driver ferry, .*label com\.docker\.compose\.project=shop.*\)$/m);
    for (const o of ['option uid=999', 'option mode=0770']) assert.ok(un.stdout.includes(o), `${o} in ${un.stdout}`);
    const vi = JSON.parse(await h.dockerOk(['volume', 'inspect', 'shop_pgdata']))[0];
    assert.equal(vi.Driver, 'ferry');
    assert.equal(vi.Labels['com.docker.compose.project'], 'shop');
    assert.equal(vi.Labels['com.docker.compose.volume'], 'pgdata');
    assert.deepEqual(vi.Options, { uid: '999', mode: '0770' });

    const again = await compose('up', '-d');
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /not created by Docker Compose|different/);
    assert.equal((await h.dockerOk(['exec', 'shop_db_1', 'sha256sum', '-c', '/data/blob.sum'])).trim(), '/data/blob: OK');
    assert.equal(await sha256(blob), before, 'the same bytes, not a fresh write');
    assert.equal((await h.dockerOk(['exec', 'shop_db_1', 'stat', '-c', '%u %a', '/data'])).trim(), '999 770');
  });

  it('keeps what it learned across a restart of ferryd, and says why Docker was not told when it cannot be', async () => {
    await f.stop();
    await f.start();
    const v = JSON.parse((await f.cli('--json', 'volume', 'inspect', 'shop_pgdata')).stdout);
    assert.equal(v.docker.labels['com.docker.compose.project'], 'shop');
    // the same undelete on a ferryd without Docker: the data comes back, the answer says what was not done
    const lone = await startFerryd({ dir: join(dir, 'lone') });
    try {
      assert.equal((await lone.cli('volume', 'create', 'solo')).code, 0);
      assert.equal((await lone.cli('volume', 'rm', 'solo')).code, 0);
      const un = await lone.cli('--json', 'volume', 'undelete', 'solo');
      assert.equal(un.code, 0, un.stderr);
      assert.deepEqual(JSON.parse(un.stdout).docker, { told: false, reason: 'no Docker engine on this host (dockerHost: none)' });
    } finally {
      await lone.destroy();
    }
  });
});
