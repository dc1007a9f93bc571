import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'corrupt state under a real Docker engine');

/** A volume whose catalog record is garbage, under a real Docker engine: Docker still finds it, with its data. */
describe('a corrupt volume record under a real Docker engine', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;

  before(async () => {
    h = await startDockerHost({ name: 'corrupt' });
    f = await startFerryd({ pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
  });
  after(async () => {
    await h?.stop();
    await f?.destroy();
  });

  it('adopts the volume: `docker run -v vol` sees its data, the bad file is kept, ferry status says so', async () => {
    await h.dockerOk(['volume', 'create', '-d', 'ferry', 'e2e-rec']);
    await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'e2e-rec:/data', 'bb', 'sh', '-c', 'echo still here > /data/greeting']);
    await f.stop();
    const file = join(f.dataDir, 'catalog', 'volumes', 'e2e-rec.json');
    const garbage = Buffer.from('\u0000\u00ff not a record');
    writeFileSync(file, garbage);
    await f.start();
    assert.equal(await h.dockerOk(['run', '--rm', '--network', 'none', '-v', 'e2e-rec:/data', 'bb', 'cat', '/data/greeting']), 'still here\n');
    assert.match(await h.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']), /^ferry e2e-rec$/m);
    const aside = readdirSync(join(f.dataDir, 'catalog', 'volumes')).filter((e) => e.startsWith('e2e-rec.json.corrupt-'));
    assert.equal(aside.length, 1);
    assert.deepEqual(readFileSync(join(f.dataDir, 'catalog', 'volumes', aside[0]!)), garbage);
    assert.match((await f.cli('status')).stdout, new RegExp(`WARNINGS[\\s\\S]*${file.replace(/[.]/g, '\\.')} could not be read`));
  });
});
