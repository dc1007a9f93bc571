import { it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';

/**
 * Two shared pools, two nodes on the same directories (marked shared by hand, as docs/shared-pools.md
 * allows): a volume made on node A in the SECOND pool is found by node B (it once looked only in the first
 * shared pool and answered "no such volume", so Docker on B made a new, empty volume of that name).
 */
const nodes: Ferryd[] = [];
let base = '';
after(async () => {
  for (const n of nodes) await n.destroy();
  if (base) await rm(base, { recursive: true, force: true });
});

it('a volume of the second shared pool made on one node is found on the other', async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-2pools-'));
  for (const p of ['p1', 'p2']) {
    await mkdir(join(base, p));
    await writeFile(join(base, p, '.ferry-pool'), 'shared by the test\n');
  }
  for (const node of ['nodeA', 'nodeB']) {
    const dir = join(base, node);
    await mkdir(dir);
    const yaml = ['heartbeatInterval: 200ms', 'nodeTimeout: 1500ms', 'defaultPool: p1', 'pools:', ...['p1', 'p2'].flatMap((p) => [`  ${p}:`, `    path: ${join(base, p)}`, '    shared: true'])].join('\n');
    await writeFile(join(dir, 'ferry.yaml'), yaml);
    nodes.push(await startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node] }));
  }
  const [a, b] = nodes as [Ferryd, Ferryd];
  assert.equal((await a.plugin('Create', { Name: 'in-p2', Opts: { pool: 'p2' } })).json.Err, '');
  const got = await b.plugin('Get', { Name: 'in-p2' });
  assert.equal(got.json.Err, '', got.text);
  assert.equal(JSON.parse((await b.cli('--json', 'volume', 'inspect', 'in-p2')).stdout).pool, 'p2');
});
