import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'ferry doctor with a real Docker engine');

describe('ferry doctor asks a real Docker engine', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  before(async () => {
    h = await startDockerHost({ name: 'doctor' });
    f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
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
});
