// Mounts whose Unmount never reached ferryd (it was down when the container went) are dropped, live ones kept.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerHost, dockerHostPrerequisites, type DockerHost } from '../helpers/dockerhost.js';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { sleep, until } from '../helpers/wait.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';

const skip = skipUnless([...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing], 'stale mounts with a real Docker engine');
/** Looks every second; a mount younger than 3 s is never dropped (ferryd's defaults: 20 s and 60 s). */
const EVERY_MS = 1000;
const GRACE_MS = 3000;

describe('stale mounts: Unmounts that never reached ferryd', { skip }, () => {
  let h: DockerHost;
  let f: Ferryd;
  let dir: string;
  const saved = process.env.FERRY_STALE_MOUNTS_MS;
  const mounts = async (vol: string): Promise<number> => JSON.parse((await f.cli('--json', 'volume', 'inspect', vol)).stdout).mounts;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-stale-'));
    process.env.FERRY_STALE_MOUNTS_MS = `${EVERY_MS},${GRACE_MS}`;
    h = await startDockerHost({ name: 'stale' });
    f = await startFerryd({ dir: join(dir, 'ferryd'), pluginSocket: join(h.pluginDir, 'ferry.sock'), dockerHost: h.host });
  });
  after(async () => {
    if (saved === undefined) delete process.env.FERRY_STALE_MOUNTS_MS;
    else process.env.FERRY_STALE_MOUNTS_MS = saved;
    await h?.stop();
    await f?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('a container removed while ferryd was down leaves a mount that ferryd drops; running and stopped-then-started containers keep theirs', async (t) => {
    for (const v of ['kept', 'gone', 'parked']) await h.dockerOk(['volume', 'create', '-d', 'ferry', v]);
    await h.dockerOk(['run', '-d', '--name', 'keeper', '--network', 'none', '-v', 'kept:/d', 'bb', 'sh', '-c', 'echo precious > /d/f; exec sleep 3600']);
    await h.dockerOk(['run', '-d', '--name', 'leaver', '--network', 'none', '-v', 'gone:/d', 'bb', 'sleep', '3600']);
    // a stopped container that still references its volume holds no mount (Docker unmounted at the stop)
    await h.dockerOk(['run', '--name', 'parker', '--network', 'none', '-v', 'parked:/d', 'bb', 'true']);
    await until('both mounted', async () => (await mounts('kept')) === 1 && (await mounts('gone')) === 1);

    // and a container made but never started references it (as Swarm's failed tasks stay): it holds no mount
    await h.dockerOk(['create', '--name', 'waiter', '--network', 'none', '-v', 'gone:/d', 'bb', 'true']);
    // ferryd dies; meanwhile the user removes a container: Docker's Unmount cannot reach ferryd
    await f.crash();
    const rmr = await h.docker(['rm', '-f', 'leaver']);
    t.diagnostic(`docker rm -f with ferryd down: exit ${rmr.code} ${rmr.stderr.trim().slice(0, 200)}`);
    await until('the container is gone', async () => !(await h.dockerOk(['ps', '-a', '--format', '{{.Names}}'])).split('\n').includes('leaver'), 60_000);
    await f.start();
    assert.equal(await mounts('gone'), 1, 'ferryd remembers the mount it was never told had ended');

    const t0 = Date.now();
    await until('the stale mount is dropped', async () => (await mounts('gone')) === 0, 60_000);
    t.diagnostic(`stale mount dropped ${Date.now() - t0} ms after ferryd started (looks every ${EVERY_MS} ms, grace ${GRACE_MS} ms)`);
    assert.match(await f.logs(), /dropped a stale mount of gone/);
    // several more looks: the running container's mount stays, its data with it
    await sleep(GRACE_MS + 3 * EVERY_MS);
    assert.equal(await mounts('kept'), 1, 'the mount of a running container is kept');
    assert.equal(await mounts('parked'), 0);
    assert.equal((await h.dockerOk(['exec', 'keeper', 'cat', '/d/f'])).trim(), 'precious');
    // the volume is free again without --force once nothing references it, and a volume in use still is not
    await h.dockerOk(['rm', 'waiter']);
    const r = await f.cli('volume', 'rm', 'gone');
    assert.equal(r.code, 0, r.stderr);
    const busy = await f.cli('volume', 'rm', 'kept');
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /in use by containers keeper \(running\)/);
    // the kept mount goes the normal way when its container stops
    await h.dockerOk(['rm', '-f', 'keeper']);
    await until('kept unmounted by Docker', async () => (await mounts('kept')) === 0);
  });
});
