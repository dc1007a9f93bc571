// Recent jobs survive a restart of ferryd, with their target; a job running when ferryd was killed is listed as interrupted.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import type { Job } from '../../src/wire/types.js';

describe('jobs across a restart of ferryd', () => {
  let base: string;
  let f: Ferryd;
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const jobs = async () => JSON.parse(await ok('--json', 'job', 'ls')) as Job[];

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-jobs-'));
    await writeFile(join(base, 'key'), 'a long enough password\n', { mode: 0o600 });
    await writeFile(join(base, 'ferry.yaml'), ['backupTargets:', '  nas:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'key')}`].join('\n'));
    f = await startFerryd({ dir: join(base, 'ferryd'), extraArgs: ['--config', join(base, 'ferry.yaml')], logLevel: 'info' });
  });
  after(async () => {
    await f?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('lists a finished job with its target after a restart, and a job killed with ferryd as interrupted', async () => {
    await ok('backup', 'init', '--target', 'nas');
    await ok('volume', 'create', 'db');
    const data = JSON.parse(await ok('--json', 'volume', 'inspect', 'db')).mountpoint as string;
    for (let i = 0; i < 24; i++) await writeFile(join(data, `t${i}.bin`), randomBytes(8 << 20));
    await ok('backup', 'create', 'db', '--target', 'nas');
    const done = (await jobs()).find((j) => j.kind === 'backup')!;
    assert.equal(done.state, 'succeeded');
    assert.equal(done.target, 'nas');

    // a second backup acknowledged (202), then ferryd is killed while it runs
    await writeFile(join(data, 'more.bin'), randomBytes(64 << 20));
    const started = await unixRequest(f.apiSocket, 'POST', '/v1/volumes/db/backups', JSON.stringify({ target: 'nas' }), { 'content-type': 'application/json' });
    assert.equal(started.status, 202, started.text);
    const running = started.json as Job;
    await f.crash();
    await f.start();

    const after = await jobs();
    const first = after.find((j) => j.id === done.id);
    assert.deepEqual({ state: first?.state, target: first?.target, result: first?.result }, { state: 'succeeded', target: 'nas', result: done.result }, 'the finished job, as it was');
    const killed = after.find((j) => j.id === running.id);
    assert.ok(killed, `the job acknowledged before the kill is listed: ${JSON.stringify(after)}`);
    assert.equal(killed.state, 'failed', 'the kill came a moment after the 202, while the backup of 64 MiB more ran');
    assert.equal(killed.error?.code, 'interrupted');
    assert.match(killed.error?.message ?? '', /ferryd stopped while this job ran/);
    assert.equal(killed.target, 'nas');
    // by id, as `ferry job wait` asks
    const byId = await unixRequest(f.apiSocket, 'GET', `/v1/jobs/${running.id}`);
    assert.equal((byId.json as Job).state, 'failed');
    // and the next backup of the volume works
    await ok('backup', 'create', 'db', '--target', 'nas');
  });
});
