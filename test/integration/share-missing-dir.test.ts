// A shared pool whose directory is missing on a mounted share: named as such (not "not mounted"), and taken up once made.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare, startShareFerryd } from '../helpers/shared-node.js';
import type { DoctorCheck, Status } from '../../src/wire/types.js';

const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');

describe('a shared pool whose directory is not on the mounted share yet', { skip }, () => {
  let base: string;
  let mnt: string;
  let f: Ferryd;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-share-dir-'));
    mnt = await mountBindShare(base);
    f = await startShareFerryd(base, join(mnt, 'ferry'), 'nodeA');
  });
  after(async () => {
    await f?.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('says the directory is missing on the share and how to make it, then takes the pool up by itself', async () => {
    const nas = async () => (JSON.parse((await f.cli('--json', 'status')).stdout) as Status).pools.find((p) => p.name === 'nas')!;
    const down = await nas();
    assert.equal(down.ok, false);
    assert.match(down.problem ?? '', new RegExp(`^${join(mnt, 'ferry')} does not exist on the \\w+ share mounted at ${mnt}: create it there \\(mkdir -p ${join(mnt, 'ferry')}, on one host`));
    assert.doesNotMatch(down.problem ?? '', /not mounted/);
    const doctor = await f.cli('--json', 'doctor');
    assert.equal(doctor.code, 1);
    const check = (JSON.parse(doctor.stdout) as { checks: DoctorCheck[] }).checks.find((c) => c.check === 'pool:nas')!;
    assert.equal(check.state, 'problem');
    assert.match(check.message, new RegExp(`^shared pool nas: its directory ${join(mnt, 'ferry')} does not exist on the \\w+ share mounted at ${mnt}$`));
    assert.match(check.fix ?? '', new RegExp(`^create it there \\(mkdir -p ${join(mnt, 'ferry')}, on one host`));
    await mkdir(join(mnt, 'ferry'));
    let up = down;
    for (let i = 0; i < 100 && !up.ok; i++) {
      await new Promise((r) => setTimeout(r, 200));
      up = await nas();
    }
    assert.equal(up.ok, true, up.problem);
    const made = await f.cli('volume', 'create', 'v1');
    assert.equal(made.code, 0, made.stderr);
  });
});
