// Which stopped containers ferryd starts again after a boot, judged on the records Docker 20.10 really wrote.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Revival, type RevivalDocker } from '../../src/docker/revival.js';
import type { ContainerInspect } from '../../src/docker/client.js';

// State.Error as Docker 20.10 left it (MISSING and POOL_DOWN copied from `docker inspect` in test/e2e/boot-order.test.ts)
const MISSING = 'get pg: error while checking if volume "pg" exists in driver "ferry": error looking up volume plugin ferry: plugin "ferry" not found';
const POOL_DOWN =
  "error while mounting volume '/tmp/ferry-boot-DioeJs/nas/volumes/shared-data/data': VolumeDriver.Mount: pool nas is not usable: shared filesystem not mounted: /tmp/ferry-boot-DioeJs/nas is on the root filesystem, not on a mounted share, and has no .ferry-pool marker: mount the share there (or give the pool a mount: setting so ferryd mounts it); if this directory really is shared by every host, create the marker: touch /tmp/ferry-boot-DioeJs/nas/.ferry-pool; nothing was written";
// ferry's refusal of an rwo volume another node holds (cluster.ts), as Docker wraps a Mount error
const HELD = "error while mounting volume '/nas/volumes/db/data': VolumeDriver.Mount: volume db is rwo (one host at a time) and node b holds it (containers pg-1, since 2026-12-02T06:00:00.000Z); stop it there first";

const rec = (over: { policy?: string; error?: string; status?: string; labels?: Record<string, string> }): ContainerInspect => ({
  Id: 'c'.repeat(64),
  Name: '/svc',
  State: { Status: over.status ?? 'exited', Running: over.status === 'running', Error: over.error ?? '', ExitCode: 255 },
  HostConfig: { RestartPolicy: { Name: over.policy ?? 'always' } },
  Config: { Labels: over.labels ?? {} },
});

/** A Docker engine that holds one stopped container and records the starts asked of it. */
function engine(c: ContainerInspect, startFails: string[] = []): RevivalDocker & { starts: number } {
  const d = {
    starts: 0,
    stoppedWithDriver: async () => [{ id: c.Id, name: c.Name.slice(1), labels: c.Config?.Labels ?? {} }],
    container: async () => c,
    start: async () => {
      d.starts++;
      const err = startFails.shift();
      if (err) throw new Error(err);
    },
  };
  return d;
}

const log = pino({ level: 'silent' });

describe('revival: the containers Docker left stopped because ferry was not ready', () => {
  const judge = (c: ContainerInspect, driver = 'ferry') => new Revival(engine(c), { driver, log }).reasonToRevive(c);

  it('starts always and unless-stopped containers whose start failed for want of the plugin or its share', () => {
    assert.equal(judge(rec({ error: MISSING })), MISSING);
    assert.equal(judge(rec({ policy: 'unless-stopped', error: MISSING })), MISSING);
    assert.equal(judge(rec({ error: POOL_DOWN })), POOL_DOWN);
  });

  it('leaves alone what Docker itself would not start, and refusals that are not about readiness', () => {
    assert.equal(judge(rec({ policy: 'no', error: MISSING })), undefined, 'no restart policy');
    assert.equal(judge(rec({ policy: 'on-failure', error: MISSING })), undefined, 'Docker does not start on-failure containers at boot');
    assert.equal(judge(rec({ error: '' })), undefined, 'exited on its own or stopped by someone');
    assert.equal(judge(rec({ error: HELD })), undefined, 'an rwo volume another node holds is for the user to resolve');
    assert.equal(judge(rec({ error: MISSING, labels: { 'com.docker.swarm.task.id': 't1' } })), undefined, 'Swarm replaces its own tasks');
    assert.equal(judge(rec({ error: MISSING, status: 'running' })), undefined);
    assert.equal(judge(rec({ error: MISSING }), 'ferry2'), undefined, 'another driver\'s plugin');
  });

  it('tries a failing start again later, waiting longer each time, and forgets a container once it runs', async () => {
    let now = 0;
    const c = rec({ error: POOL_DOWN });
    const d = engine(c, ['still down', 'still down']);
    const r = new Revival(d, { driver: 'ferry', log, intervalMs: 1000, now: () => now });
    await r.look();
    assert.equal(d.starts, 1);
    await r.look();
    assert.equal(d.starts, 1, 'not again before the wait is over');
    now = 1000;
    await r.look();
    assert.equal(d.starts, 2);
    now = 2500;
    await r.look();
    assert.equal(d.starts, 2, 'the second wait is twice the first');
    now = 3000;
    await r.look();
    assert.equal(d.starts, 3);
    assert.deepEqual(r.revived().map((x) => x.ok), [false, false, true]);
  });
});
