// A removal on one node racing a Mount on another (shared pool): never both, whatever the interleaving.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare } from '../helpers/shared-node.js';

/**
 * The 30-minute soak found it: `rm` on node A looked at the attachments, a Mount on node B published its
 * attachment just after, and the volume went to A's trash while B's new container had it mounted. The
 * handshake: the removal marks itself on the share before its last look at the attachments; a first Mount
 * on a node looks at the record and the mark after publishing its attachment. FERRY_TEST_PAUSE holds each
 * side at the point of the race, so each interleaving is met for sure; then fifty unpaced rounds.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');

describe('shared pool: rm on one node racing a Mount on another', { skip }, () => {
  let base: string;
  let mnt: string;
  const nodes: Ferryd[] = [];
  const startNode = async (node: string, pause?: string) => {
    const dir = join(base, node);
    await mkdir(dir, { recursive: true });
    const yaml = [`node: ${node}`, 'heartbeatInterval: 200ms', 'nodeTimeout: 1500ms', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${mnt}`, '    shared: true'].join('\n');
    await writeFile(join(dir, 'ferry.yaml'), yaml);
    await rm(pausedFile(node), { force: true });
    const f = await startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node], ...(pause ? { env: { FERRY_TEST_PAUSE: pause, FERRY_TEST_PAUSE_FILE: pausedFile(node) } } : {}) });
    nodes.push(f);
    return f;
  };
  /** Where a node's ferryd says which pause point it reached (FERRY_TEST_PAUSE_FILE). */
  const pausedFile = (node: string) => join(base, `${node}.paused`);
  /** Wait until the node's ferryd holds at `point` (a load-proof wait: no guess of how long it takes to get there). */
  const reached = async (node: string, point: string) => {
    const deadline = Date.now() + 20_000;
    while (!(await readFile(pausedFile(node), 'utf8').catch(() => '')).includes(point)) {
      assert.ok(Date.now() < deadline, `${node} did not reach ${point}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** Two nodes on the share; `pauseA`/`pauseB` hold their ferryd at the named points. */
  const pair = async (pauseA?: string, pauseB?: string) => {
    for (const f of nodes.splice(0)) await f.destroy();
    return { a: await startNode('nodeA', pauseA), b: await startNode('nodeB', pauseB) };
  };
  const ok = async (f: Ferryd, method: string, body: Record<string, unknown>) => {
    const r = await f.plugin(method, body);
    assert.equal(r.json?.Err, '', `${method} ${JSON.stringify(body)}: ${r.text}`);
    return r.json;
  };
  /** A volume made on A with a file in it; returns the bytes. */
  const volumeWithData = async (a: Ferryd, name: string) => {
    await ok(a, 'Create', { Name: name });
    const p = (await ok(a, 'Mount', { Name: name, ID: 'fill' })).Mountpoint;
    const bytes = `data of ${name} ${Date.now()}\n`.repeat(100);
    await writeFile(join(p, 'file'), bytes);
    await ok(a, 'Unmount', { Name: name, ID: 'fill' });
    return bytes;
  };
  const attachmentsOf = async (name: string) => readdir(join(mnt, 'attachments', name)).catch(() => [] as string[]);
  /** The data of a volume A moved to its trash, read back through undelete under a new name. */
  const trashedBytes = async (a: Ferryd, name: string, as: string) => {
    const u = await a.cli('volume', 'undelete', name, '--as', as);
    assert.equal(u.code, 0, u.stderr);
    const p = (await ok(a, 'Mount', { Name: as, ID: 'check' })).Mountpoint;
    const text = await readFile(join(p, 'file'), 'utf8');
    await ok(a, 'Unmount', { Name: as, ID: 'check' });
    return text;
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-rmrace-'));
    mnt = await mountBindShare(base);
  });
  after(async () => {
    for (const f of nodes.splice(0)) await f.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('B read the record, A removes before B publishes its attachment: B backs out, A\'s trash holds the data', async () => {
    const { a, b } = await pair(undefined, 'mount-before-attach:6000');
    const bytes = await volumeWithData(a, 'v1');
    await ok(b, 'Get', { Name: 'v1' });
    const mounting = b.plugin('Mount', { Name: 'v1', ID: 'b1' });
    await reached('nodeB', 'mount-before-attach'); // B is past its read of the record, before its attachment
    const removed = await a.cli('volume', 'rm', 'v1');
    assert.equal(removed.code, 0, removed.stderr);
    const m = await mounting;
    assert.match(m.json.Err, /volume v1 was removed on another node while this Mount started; nothing was mounted here/);
    await b.plugin('Unmount', { Name: 'v1', ID: 'b1' }); // Docker sends it after a failed Mount
    assert.deepEqual(await attachmentsOf('v1'), [], 'B withdrew its attachment');
    assert.equal((JSON.parse((await b.cli('--json', 'volume', 'ls')).stdout) as Array<{ name: string }>).some((v) => v.name === 'v1'), false);
    assert.equal(await trashedBytes(a, 'v1', 'v1-back'), bytes);
  });

  it('A marked the removal and looked at the attachments, then B mounts: B backs out naming A, A removes', async () => {
    const { a, b } = await pair('remove-before-move:6000');
    const bytes = await volumeWithData(a, 'v2');
    const removing = a.cli('volume', 'rm', 'v2');
    await reached('nodeA', 'remove-before-move'); // A is past its last look at the attachments
    const m = await b.plugin('Mount', { Name: 'v2', ID: 'b1' });
    assert.match(m.json.Err, /volume v2 is busy: node nodeA is about to remove it \(since .*\); nothing was mounted here: try again when that is done/);
    await b.plugin('Unmount', { Name: 'v2', ID: 'b1' });
    const removed = await removing;
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(await attachmentsOf('v2'), []);
    assert.deepEqual(await readdir(join(mnt, 'changes')), [], 'the mark is gone with the removal');
    assert.equal(await trashedBytes(a, 'v2', 'v2-back'), bytes);
  });

  it('B published its attachment before A looked: A refuses naming B, B\'s Mount stands with the data', async () => {
    const { a, b } = await pair(undefined, 'mount-before-check:6000');
    const bytes = await volumeWithData(a, 'v3');
    await ok(b, 'Get', { Name: 'v3' });
    const mounting = b.plugin('Mount', { Name: 'v3', ID: 'b1' });
    await reached('nodeB', 'mount-before-check'); // B's attachment is on the share, its check not yet made
    const removed = await a.cli('volume', 'rm', 'v3');
    assert.equal(removed.code, 1);
    assert.match(removed.stderr, /volume v3 is in use on node nodeB/);
    const m = await mounting;
    assert.equal(m.json.Err, '', m.text);
    assert.equal(await readFile(join(m.json.Mountpoint, 'file'), 'utf8'), bytes);
    assert.deepEqual(await readdir(join(mnt, 'changes')), [], 'the refused removal left no mark');
    await ok(b, 'Unmount', { Name: 'v3', ID: 'b1' });
  });

  it('a mark left by a ferryd killed mid-removal does not block Mounts once that ferryd is gone', async () => {
    const { a, b } = await pair('remove-before-move:5000');
    await volumeWithData(a, 'v4');
    const removing = a.cli('volume', 'rm', 'v4');
    await reached('nodeA', 'remove-before-move');
    assert.deepEqual(await readdir(join(mnt, 'changes')), ['v4.json']);
    await a.crash();
    await removing;
    // A restarts at once (a new instance: its old mark counts for nothing) and removes nothing by itself
    await a.start();
    await ok(b, 'Mount', { Name: 'v4', ID: 'b1' });
    await ok(b, 'Unmount', { Name: 'v4', ID: 'b1' });
    // and the next removal breaks the stale mark
    assert.equal((await a.cli('volume', 'rm', 'v4')).code, 0);
    assert.deepEqual(await readdir(join(mnt, 'changes')), []);
  });

  it('fifty unpaced rounds of rm on A against a first Mount on B: never both succeed', async () => {
    const { a, b } = await pair();
    let mounts = 0;
    let removals = 0;
    for (let i = 0; i < 50; i++) {
      const name = `r${i}`;
      await ok(a, 'Create', { Name: name });
      await ok(b, 'Get', { Name: name });
      const delay = (i * 7) % 30;
      const [m, r] = await Promise.all([
        b.plugin('Mount', { Name: name, ID: 'b1' }),
        new Promise((res) => setTimeout(res, delay)).then(() => a.cli('volume', 'rm', name)),
      ]);
      const mounted = m.json?.Err === '';
      const gone = r.code === 0;
      assert.ok(!(mounted && gone), `round ${i} (delay ${delay} ms): the volume went to the trash while B mounted it: ${m.text} / ${r.stderr}`);
      if (mounted) mounts++;
      if (gone) removals++;
      await b.plugin('Unmount', { Name: name, ID: 'b1' });
    }
    assert.ok(mounts + removals > 0, 'some round had a winner');
  });
});
