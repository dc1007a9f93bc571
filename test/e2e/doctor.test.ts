import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { until } from '../helpers/wait.js';

interface Check {
  check: string;
  state: string;
  message: string;
  fix?: string;
}

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'ferry doctor with a real Docker engine');

describe('ferry doctor asks a real Docker engine', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  before(async () => {
    h = await startDockerHost({ name: 'doctor' });
    // (the password of backup targets given by URL: the restore below)
    f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host, env: { FERRY_BACKUP_PASSWORD: 'doctor test' } });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
  });

  it('sees the driver listed by Docker (GET /volumes, then /info Plugins.Volume) and exits 0', async () => {
    const r = await f.cli('doctor');
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout.replace(/\n {9}/g, ' '), /^ok +Docker lists volume driver ferry /m);
    const checks = JSON.parse((await f.cli('--json', 'doctor')).stdout).checks as Array<{ check: string; state: string }>;
    assert.equal(checks.find((c) => c.check === 'docker')?.state, 'ok');
    // Docker itself agrees
    assert.match(await h.dockerOk(['info', '--format', '{{json .Plugins.Volume}}']), /"ferry"/);
  });

  it("puts a volume made by `ferry volume create` into Docker's store: with ferryd down, `docker run -v` fails instead of making a local twin", async () => {
    const made = await f.cli('--json', 'volume', 'create', 'solo');
    assert.equal(made.code, 0, made.stderr);
    assert.deepEqual(JSON.parse(made.stdout).registration, { registered: true });
    await f.stop(); // at once: the create's answer came after Docker stored the name
    try {
      const r = await h.docker(['run', '--rm', '--network', 'none', '-v', 'solo:/d', 'bb', 'sh', '-c', 'echo lost > /d/f']);
      assert.notEqual(r.code, 0, 'Docker cannot mount it without ferryd');
      assert.match(r.stderr, /ferry/);
      // (Docker lists it from its own store while the plugin is down: the name is ferry's there)
      assert.equal((await h.dockerOk(['volume', 'ls', '--filter', 'name=^solo$', '--format', '{{.Driver}}'])).trim(), 'ferry', 'no local volume solo');
    } finally {
      await f.start();
    }
    assert.equal((await h.dockerOk(['volume', 'ls', '--filter', 'name=^solo$', '--format', '{{.Driver}}'])).trim(), 'ferry');
  });

  it("puts a volume made by `ferry backup restore` into Docker's store before the job ends: Docker refuses a local twin at once", async () => {
    const repo = await mkdtemp(join(tmpdir(), 'ferry-doctor-repo-'));
    try {
      assert.equal((await f.cli('volume', 'create', 'orig')).code, 0);
      const mp = (JSON.parse((await f.cli('--json', 'volume', 'inspect', 'orig')).stdout) as { mountpoint: string }).mountpoint;
      await writeFile(join(mp, 'f'), 'kept\n');
      assert.equal((await f.cli('backup', 'init', '--target', `file://${repo}`)).code, 0);
      const backup = await f.cli('backup', 'create', 'orig', '--target', `file://${repo}`);
      assert.equal(backup.code, 0, backup.stderr);
      const restore = await f.cli('backup', 'restore', backup.stdout.trim(), 'restored');
      assert.equal(restore.code, 0, restore.stderr);
      // at once (ferryd's periodic pass registers a volume from its second sighting, seconds later): Docker
      // refuses a local volume of the name only when its own store holds the name for ferry
      const twin = await h.docker(['volume', 'create', '-d', 'local', 'restored']);
      assert.notEqual(twin.code, 0, "Docker's store holds restored for ferry: no local twin");
      assert.match(twin.stderr, /driver 'ferry' already has volume 'restored'/);
      assert.equal(await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'restored:/d', 'bb', 'cat', '/d/f']), 'kept\n');
      // a restore into a name Docker holds as its own `local` volume: made, and the user is told containers get the other one
      await h.dockerOk(['volume', 'create', '-d', 'local', 'taken-local']);
      const clash = await f.cli('backup', 'restore', backup.stdout.trim(), 'taken-local');
      assert.equal(clash.code, 0, clash.stderr);
      assert.equal(clash.stdout, 'taken-local\n');
      assert.match(clash.stderr, /^ferry: warning: Docker already holds another volume named taken-local \(.*\): `docker run -v taken-local` may mount that one instead of ferry's/m);
      const json = await f.cli('--json', 'backup', 'restore', backup.stdout.trim(), 'taken-local-2');
      assert.deepEqual(JSON.parse(json.stdout).registration, { registered: true }, json.stderr);
      await h.dockerOk(['volume', 'rm', 'taken-local']);
      for (const v of ['taken-local', 'taken-local-2']) assert.equal((await f.cli('volume', 'rm', '--purge', v)).code, 0);
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });

  it("answers `ferry volume create` while Docker's engine hangs (SIGSTOP), and the volume works once it is back", async () => {
    process.kill(h.pid, 'SIGSTOP');
    let made;
    try {
      made = await f.cli('--json', 'volume', 'create', 'frozen');
    } finally {
      process.kill(h.pid, 'SIGCONT');
    }
    assert.equal(made.code, 0, made.stderr);
    assert.equal(made.stderr, '', 'no warning: ferryd registers it when the engine answers');
    const registration = (JSON.parse(made.stdout) as { registration: { registered: boolean; retrying?: boolean; reason?: string } }).registration;
    assert.deepEqual([registration.registered, registration.retrying], [false, true]);
    assert.match(registration.reason ?? '', /did not answer in 5 s; ferryd registers the volume when it does/);
    assert.equal(await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'frozen:/d', 'bb', 'sh', '-c', 'echo thawed > /d/f && cat /d/f']), 'thawed\n');
  });

  it("names a local volume under a ferry volume's name, with where its files are and how to be rid of it", async () => {
    // Docker's local `dup` (what a `docker run -v dup` makes while ferry cannot be reached), and ferry's
    await h.dockerOk(['volume', 'create', '-d', 'local', 'dup']);
    await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'dup:/d', 'bb', 'sh', '-c', 'echo stray > /d/s']);
    const made = await f.cli('volume', 'create', 'dup');
    assert.equal(made.code, 0, 'made all the same');
    assert.equal(made.stdout, 'dup\n');
    assert.match(made.stderr, /^ferry: warning: Docker already holds another volume named dup \(.*\): `docker run -v dup` may mount that one instead of ferry's; `ferry doctor` says where its files are/);
    // (Docker will not mount ferry's by that name now: the file is put there the way ferryd's pool keeps it)
    const mp = (JSON.parse((await f.cli('--json', 'volume', 'inspect', 'dup')).stdout) as { mountpoint: string }).mountpoint;
    await writeFile(join(mp, 'm'), 'mine\n');

    const r = await f.cli('--json', 'doctor');
    assert.notEqual(r.code, 0, 'a problem');
    const checks = JSON.parse(r.stdout).checks as Check[];
    const c = checks.find((x) => x.check === 'docker-name:dup');
    assert.equal(c?.state, 'problem', JSON.stringify(checks));
    assert.match(c!.message, /`local` volume named dup beside ferry's \(its files: \S+\/volumes\/dup\/_data\)/);
    assert.match(c!.fix ?? '', /docker volume rm dup/);
    assert.equal(checks.find((x) => x.check === 'docker-names'), undefined);
    const text = (await f.cli('doctor')).stdout;
    assert.match(text.replace(/\n {9}/g, ' '), /docker-name:dup|local` volume named dup/);
    await until("ferryd's warning", async () => /another volume under the name of this ferry volume/.test(await f.logs()), 20_000);

    // the fix: the local one goes (Docker's store names it), ferry's stays with its data
    await h.dockerOk(['volume', 'rm', 'dup']);
    assert.equal((await h.dockerOk(['volume', 'ls', '--filter', 'name=^dup$', '--format', '{{.Driver}}'])).trim(), 'ferry');
    assert.equal((await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'dup:/d', 'bb', 'cat', '/d/m'])).trim(), 'mine');
    const after = JSON.parse((await f.cli('--json', 'doctor')).stdout).checks as Check[];
    assert.equal(after.find((x) => x.check === 'docker-names')?.state, 'ok');
  });
});
