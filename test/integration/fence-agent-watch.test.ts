// ferryd says so (status, doctor) while it holds rwo volumes of a shared pool and no fencing agent watches its lease.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, FERRY_BIN, type Ferryd } from '../helpers/ferryd.js';
import { until } from '../helpers/wait.js';
import type { Status } from '../../src/wire/types.js';

describe('a holder of rwo volumes without a fencing agent is told', () => {
  let base: string;
  let f: Ferryd;
  let agent: ChildProcess | undefined;
  const warning = async () => (JSON.parse((await f.cli('--json', 'status')).stdout) as Status).warnings.find((w) => w.code === 'fence_agent');

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-agent-watch-'));
    const pool = join(base, 'nas');
    await mkdir(pool);
    await writeFile(join(pool, '.ferry-pool'), 'a shared pool for this test\n');
    const dir = join(base, 'node');
    await mkdir(dir);
    await writeFile(join(dir, 'ferry.yaml'), ['node: nodeA', 'heartbeatInterval: 200ms', 'nodeTimeout: 3000ms', 'fenceDeadline: 1500ms', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${pool}`, '    shared: true'].join('\n'));
    f = await startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', 'nodeA'] });
  });
  after(async () => {
    agent?.kill('SIGKILL');
    await f?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('warns while an rwo volume is held and no agent beats; clears when an agent runs or nothing is held', async () => {
    for (const v of ['db', 'web']) assert.equal((await f.plugin('Create', { Name: v, Opts: v === 'db' ? { access: 'rwo' } : {} })).json.Err, '');
    await f.plugin('Mount', { Name: 'web', ID: 'm0' });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await warning(), undefined, 'an rwx volume needs no fencing');
    assert.equal((await f.plugin('Mount', { Name: 'db', ID: 'm1' })).json.Err, '');
    await until('the missing agent is warned of', async () => (await warning()) !== undefined, 5000);
    const w = (await warning())!;
    assert.match(w.message, /no fencing agent watches this node's lease .* missing\) while it holds 1 rwo volume\(s\)/);
    assert.match(w.message, /ferry fence --data-dir/);
    assert.match((await f.cli('doctor')).stdout, /fencing agent/);

    agent = spawn(FERRY_BIN, ['fence', '--data-dir', f.dataDir], { stdio: 'ignore' });
    await until('the warning clears once an agent beats', async () => (await warning()) === undefined, 5000);
    agent.kill('SIGKILL');
    await until('an agent gone for 5 s is warned of again', async () => /last written \d+ s ago/.test((await warning())?.message ?? ''), 10_000);

    assert.equal((await f.plugin('Unmount', { Name: 'db', ID: 'm1' })).json.Err, '');
    await until('nothing held, nothing to warn of', async () => (await warning()) === undefined, 5000);
    await f.plugin('Unmount', { Name: 'web', ID: 'm0' });
  });
});
