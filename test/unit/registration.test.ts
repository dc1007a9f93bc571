// Registration of ferry volumes in Docker's store (src/docker/registration.ts), against an in-memory Docker.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registration } from '../../src/docker/registration.js';
import { DockerApiError, type DockerVolume } from '../../src/docker/client.js';

/** Docker's store as far as registration sees it: names and drivers; `failNext` makes calls fail as a restarting engine does. */
class MemoryDocker {
  readonly store = new Map<string, string>();
  readonly calls: string[] = [];
  /** The driver options and labels each volume was stored with. */
  readonly given = new Map<string, { opts: Record<string, string>; labels: Record<string, string> }>();
  failNext = 0;
  during?: (name: string) => void;
  /** While set, calls wait for it (an engine that hangs: SIGSTOPped, or stuck on another plugin). */
  hung?: Promise<void>;
  async createVolume(v: { Name: string; Driver: string; DriverOpts: Record<string, string>; Labels: Record<string, string> }): Promise<DockerVolume> {
    this.calls.push(v.Name);
    this.given.set(v.Name, { opts: v.DriverOpts, labels: v.Labels });
    this.during?.(v.Name);
    await new Promise((r) => setTimeout(r, 1));
    await this.hung;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('connect ECONNREFUSED docker.sock');
    }
    const had = this.store.get(v.Name);
    if (had && had !== v.Driver) throw new DockerApiError(`volume name ${v.Name} already in use with driver ${had}`, 409);
    this.store.set(v.Name, v.Driver);
    return { Name: v.Name, Driver: v.Driver, Labels: {}, Options: {} };
  }
}

function setup(names: string[], nowWaitMs?: number, known: Record<string, { options?: Record<string, string>; labels?: Record<string, string> }> = {}) {
  const docker = new MemoryDocker();
  const vols = new Set(names);
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void warnings.push(l) });
  const r = new Registration(docker, { names: () => [...vols].sort(), has: (n) => vols.has(n), dockerKnown: (n) => known[n] }, 'ferry', log, 60_000, nowWaitMs);
  return { docker, vols, r, warnings };
}

describe('registration of ferry volumes with Docker', () => {
  it('registers every volume once, from the second pass that sees it (an undelete tells Docker its labels first)', async () => {
    const { docker, vols, r } = setup(['a', 'b', 'c']);
    await r.pass();
    assert.deepEqual(docker.calls, [], 'not at first sight');
    await r.pass();
    assert.deepEqual([...docker.store].sort(), [['a', 'ferry'], ['b', 'ferry'], ['c', 'ferry']]);
    await r.pass();
    assert.equal(docker.calls.length, 3, 'nothing twice');
    vols.add('d'); // a shared volume made on another node, learned by a sync
    await r.pass();
    assert.equal(docker.calls.length, 3);
    await r.pass();
    assert.deepEqual(docker.calls.slice(3), ['d']);
  });

  it('registers a volume made through Docker on another node with the driver options and labels it was made with (Compose compares them)', async () => {
    const compose = { 'com.docker.compose.project': 'lab', 'com.docker.compose.volume': 'data' };
    const { docker, r } = setup(['lab_data', 'plain'], undefined, { lab_data: { options: { access: 'rwx' }, labels: compose } });
    await r.pass();
    await r.pass();
    assert.deepEqual(docker.given.get('lab_data'), { opts: { access: 'rwx' }, labels: compose });
    assert.deepEqual(docker.given.get('plain'), { opts: {}, labels: {} });
  });

  it('skips what Docker stored itself, tries again after a failure, and registers a name again once it was gone', async () => {
    const { docker, vols, r } = setup(['a', 'b']);
    r.stored('a'); // Docker's own Create
    docker.failNext = 1; // dockerd restarting
    await r.pass();
    await r.pass();
    assert.deepEqual(docker.calls, ['b']);
    assert.equal(docker.store.has('b'), false);
    await r.pass();
    assert.deepEqual(docker.calls, ['b', 'b']);
    assert.equal(docker.store.get('b'), 'ferry');
    vols.delete('b');
    await r.pass();
    vols.add('b'); // removed, then a new volume of the same name
    await r.pass();
    await r.pass();
    assert.deepEqual(docker.calls, ['b', 'b', 'b']);
  });

  it("claims a name only while registering it (the plugin then refuses Docker's Create of a volume removed meanwhile)", async () => {
    const { docker, r } = setup(['a']);
    const seen: boolean[] = [];
    docker.during = (n) => seen.push(r.claims(n));
    await r.pass();
    await r.pass();
    assert.deepEqual(seen, [true]);
    assert.equal(r.claims('a'), false);
  });

  it('warns once of a same-named volume of another driver, and does not ask again', async () => {
    const { docker, r, warnings } = setup(['dup']);
    docker.store.set('dup', 'local');
    await r.pass();
    await r.pass();
    await r.pass();
    assert.equal(docker.calls.length, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /another volume under the name of this ferry volume.*ferry doctor/);
  });

  it("registers a volume made on a user's request at once, says why not when it cannot, and the passes do not ask again", async () => {
    const { docker, vols, r, warnings } = setup(['made']);
    const seen: boolean[] = [];
    docker.during = (n) => seen.push(r.claims(n));
    assert.deepEqual(await r.now('made'), { registered: true });
    assert.equal(docker.store.get('made'), 'ferry');
    assert.deepEqual(seen, [true], "Docker's Create of it during the call is ferryd's own");
    await r.pass();
    await r.pass();
    assert.deepEqual(docker.calls, ['made'], 'registered once');

    vols.add('dup');
    docker.store.set('dup', 'local');
    const dup = await r.now('dup');
    assert.equal(dup.registered, false);
    assert.equal(dup.retrying, undefined, 'nothing to try again: another driver holds the name');
    assert.match(dup.reason ?? '', /^Docker already holds another volume named dup \(.*local.*\): `docker run -v dup` may mount that one instead of ferry's; `ferry doctor`/);
    assert.equal(warnings.length, 1);

    vols.add('later');
    docker.failNext = 1; // an engine restarting
    const later = await r.now('later');
    assert.deepEqual([later.registered, later.retrying], [false, true]);
    assert.match(later.reason ?? '', /ECONNREFUSED.*tries again/);
    await r.pass();
    await r.pass(); // its second sighting
    assert.equal(docker.store.get('later'), 'ferry', 'the passes register it once the engine answers');
  });

  it("answers a user's create in time when Docker's engine hangs, and registers the volume once the engine answers", { timeout: 10_000 }, async () => {
    const { docker, r } = setup(['frozen'], 50);
    let wake!: () => void;
    docker.hung = new Promise((res) => (wake = res));
    const answer = await r.now('frozen'); // (the engine still hangs: wake() comes below)
    assert.deepEqual([answer.registered, answer.retrying], [false, true]);
    assert.match(answer.reason ?? '', /did not answer in 0\.05 s; ferryd registers the volume when it does/);
    assert.equal(r.claims('frozen'), true, 'still in flight');
    await r.pass();
    await r.pass(); // its second sighting: the call in flight is not made again
    assert.deepEqual(docker.calls, ['frozen']);
    wake();
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(docker.store.get('frozen'), 'ferry');
    assert.equal(r.claims('frozen'), false);
    await r.pass();
    assert.deepEqual(docker.calls, ['frozen'], 'registered: not asked again');
  });
});
