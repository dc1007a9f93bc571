import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { unmountRetrying } from '../helpers/unmount.js';

/**
 * Two ferryd "hosts" on this machine that share one pool (a directory bind-mounted where the pool
 * lives, as an NFS or GlusterFS mount would be on real hosts). No Docker here: the plugin protocol is
 * driven directly, as Docker would.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('shared pools across two ferryd nodes', { skip }, () => {
  let base: string;
  let share: string; // what the "NAS" holds
  let mnt: string; // where every node mounts it
  let a: Ferryd;
  let b: Ferryd;
  const config = (node: string, extra = '') =>
    [
      `node: ${node}`,
      'heartbeatInterval: 200ms',
      'nodeTimeout: 1500ms',
      'defaultPool: nas',
      'pools:',
      '  nas:',
      `    path: ${mnt}`,
      '    shared: true',
      extra,
    ].join('\n');
  const startNode = async (node: string) => {
    const dir = join(base, node);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'ferry.yaml'), config(node));
    return startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node] });
  };
  const ok = async (f: Ferryd, method: string, body: Record<string, unknown>) => {
    const r = await f.plugin(method, body);
    assert.equal(r.json?.Err, '', `${method} ${JSON.stringify(body)}: ${r.text}`);
    return r.json;
  };
  const err = async (f: Ferryd, method: string, body: Record<string, unknown>) => {
    const r = await f.plugin(method, body);
    assert.notEqual(r.json?.Err ?? '', '', `${method} ${JSON.stringify(body)} should fail`);
    return r.json.Err as string;
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-shared-'));
    share = join(base, 'nas-export');
    mnt = join(base, 'mnt-nas');
    await mkdir(share);
    await mkdir(mnt);
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('refuses to use a shared pool whose filesystem is not mounted, and writes nothing there', async () => {
    a = await startNode('nodeA');
    const st = JSON.parse((await a.cli('--json', 'status')).stdout);
    const nas = st.pools.find((p: { name: string }) => p.name === 'nas');
    assert.equal(nas.ok, false);
    assert.match(nas.problem, /not on a mounted share/);
    assert.match((await a.cli('status')).stdout, /^nas\s+dir shared\s+DOWN\s[\s\S]*^nas: .*\n  DOWN: shared filesystem not mounted/m);
    const e = await err(a, 'Create', { Name: 'early' });
    assert.match(e, /pool nas is not usable: shared filesystem not mounted.*nothing was written/);
    const cli = await a.cli('volume', 'create', 'early');
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /touch .*\.ferry-pool/);
    assert.deepEqual(await readdir(mnt), [], 'nothing was written into the bare mountpoint');
    // the share gets mounted: the pool comes up without a restart
    assert.equal((await run('mount', ['--bind', share, mnt])).code, 0);
    await ok(a, 'Create', { Name: 'early' });
    assert.ok((await readdir(share)).includes('.ferry-pool'), 'the marker is on the share');
    await access(join(share, 'volumes', 'early', 'data'));
  });

  it('shows a volume made on one node on the other, with the same data, and answers global scope', async () => {
    b = await startNode('nodeB');
    assert.equal((await b.plugin('Capabilities', {})).json.Capabilities.Scope, 'global');
    await ok(a, 'Create', { Name: 'web', Opts: { uid: '33' } });
    const got = await ok(b, 'Get', { Name: 'web' });
    assert.equal(got.Volume.Status.node, 'nodeA');
    const listed = (await ok(b, 'List', {})).Volumes.map((v: { Name: string }) => v.Name);
    assert.deepEqual(listed.sort(), ['early', 'web']);
    const pa = (await ok(a, 'Mount', { Name: 'web', ID: 'a1' })).Mountpoint;
    const pb = (await ok(b, 'Mount', { Name: 'web', ID: 'b1' })).Mountpoint;
    await writeFile(join(pa, 'from-a'), 'hello from A');
    await writeFile(join(pb, 'from-b'), 'hello from B');
    assert.equal(await readFile(join(pb, 'from-a'), 'utf8'), 'hello from A');
    assert.equal(await readFile(join(pa, 'from-b'), 'utf8'), 'hello from B');
    // both nodes see both attachments (rwx: many hosts at once)
    await sleep(500);
    const v = JSON.parse((await a.cli('--json', 'volume', 'inspect', 'web')).stdout);
    assert.deepEqual(v.attachments.map((x: { node: string }) => x.node).sort(), ['nodeA', 'nodeB']);
    assert.match((await b.cli('volume', 'ls')).stdout, /^web\s+nas\s+rwx\s+1\s+nodeA\(1\) nodeB\(1\)\s/m);
    // removing it while another node uses it is refused, naming that node
    await ok(b, 'Unmount', { Name: 'web', ID: 'b1' });
    const rm1 = await b.cli('volume', 'rm', 'web');
    assert.equal(rm1.code, 1);
    assert.match(rm1.stderr, /in use on node nodeA/);
    await ok(a, 'Unmount', { Name: 'web', ID: 'a1' });
    await ok(b, 'Remove', { Name: 'web' });
    // gone for A too (List reads the shared catalog; Get answers from what the last List or heartbeat saw)
    assert.ok(!(await ok(a, 'List', {})).Volumes.some((x: { Name: string }) => x.Name === 'web'));
    assert.match(await err(a, 'Get', { Name: 'web' }), /no such volume/);
    assert.match(await err(a, 'Mount', { Name: 'web', ID: 'a2' }), /no such volume/);
    const status = await a.cli('status');
    assert.match(status.stdout, /^nodeA \(this node\)\s+alive\s/m);
    assert.match(status.stdout, /^nodeB\s+alive\s/m);
  });

  it('two nodes racing to create the same 200 names make exactly one volume each', async () => {
    const names = Array.from({ length: 200 }, (_, i) => `race-${i}`);
    // same options (Docker's Create from two hosts): both succeed
    const results = await Promise.all(names.flatMap((n) => [a.plugin('Create', { Name: n }), b.plugin('Create', { Name: n })]));
    assert.deepEqual(results.filter((r) => r.json?.Err !== '').map((r) => r.text), []);
    const records = (await readdir(join(share, 'catalog'))).filter((e) => e.startsWith('race-'));
    assert.equal(records.length, 200);
    const creators = new Map<string, number>();
    for (const r of records) {
      const rec = JSON.parse(await readFile(join(share, 'catalog', r), 'utf8'));
      creators.set(rec.node, (creators.get(rec.node) ?? 0) + 1);
    }
    assert.equal([...creators.values()].reduce((x, y) => x + y, 0), 200);
    assert.equal((await readdir(join(share, 'volumes'))).filter((e) => e.startsWith('race-')).length, 200);
    // different options: one winner, the other is told
    const diff = await Promise.all(names.slice(0, 50).flatMap((n) => [a.plugin('Create', { Name: `${n}-x`, Opts: { mode: '0700' } }), b.plugin('Create', { Name: `${n}-x`, Opts: { mode: '0750' } })]));
    for (let i = 0; i < 50; i++) {
      const errs = [diff[2 * i]!, diff[2 * i + 1]!].filter((r) => r.json?.Err !== '');
      assert.equal(errs.length, 1, `exactly one of two creates of race-${i}-x fails: ${diff[2 * i]!.text} / ${diff[2 * i + 1]!.text}`);
      assert.match(errs[0]!.json.Err, /already exists \(created on node node[AB] with other options\)/);
    }
    // a create that comes after the race (the record is already there) is told the same: who made it
    const creator = JSON.parse(await readFile(join(share, 'catalog', 'race-0-x.json'), 'utf8')).node;
    for (const n of [a, b]) assert.match((await n.plugin('Create', { Name: 'race-0-x', Opts: { mode: '0711' } })).json.Err, new RegExp(`already exists \\(created on node ${creator} with other options\\)`));
    for (const e of await readdir(join(share, 'catalog'))) assert.ok(!e.startsWith('.'), `no temporary file left: ${e}`);
  });

  it('a create killed mid-way (kill -9 during a clone) blocks no name: nothing half-made is visible, the restart sweeps its staging directory', async () => {
    await ok(a, 'Create', { Name: 'bigsrc' });
    const src = join(share, 'volumes', 'bigsrc', 'data');
    for (let d = 0; d < 40; d++) {
      await mkdir(join(src, `d${d}`));
      await Promise.all(Array.from({ length: 500 }, (_, i) => writeFile(join(src, `d${d}`, `f${i}`), `file ${d}/${i}\n`)));
    }
    const snap = await a.cli('snapshot', 'create', 'bigsrc', '--name', 's1');
    assert.equal(snap.code, 0, snap.stderr);
    const staged = async () => (await readdir(join(share, 'staging')).catch(() => [] as string[]));
    assert.deepEqual(await staged(), [], 'no staging directory before');
    let answer = '';
    const pending = a.plugin('Create', { Name: 'halfway', Opts: { from: 'bigsrc@s1' } }).then((r) => (answer = r.text), () => undefined);
    for (const deadline = Date.now() + 20_000; (await staged()).length === 0; ) {
      assert.ok(Date.now() < deadline && !answer, `the clone never showed in the staging directory (${answer})`);
      await sleep(5);
    }
    await a.crash();
    await pending;
    assert.equal((await staged()).length, 1, 'the killed clone left its staging directory');
    // the name is free on every host at once: no volume directory without a record
    assert.equal(await access(join(share, 'volumes', 'halfway')).then(() => true, () => false), false, 'no volume directory for the killed create');
    await ok(b, 'Create', { Name: 'halfway' });
    assert.equal((await ok(b, 'Get', { Name: 'halfway' })).Volume.Name, 'halfway');
    await a.start();
    assert.deepEqual(await staged(), [], 'the restarted ferryd swept what its killed create left');
    assert.match(await a.logs(), /removing what a create killed mid-way left in the staging directory/);
    // the clone works when it is not killed, and holds every file
    await ok(a, 'Create', { Name: 'whole', Opts: { from: 'bigsrc@s1' } });
    const r = await run('diff', ['-r', src, join(share, 'volumes', 'whole', 'data')]);
    assert.equal(r.code, 0, r.stdout.slice(0, 500));
    assert.deepEqual(await staged(), [], 'nothing left in the staging directory');
    for (const v of ['bigsrc', 'halfway', 'whole']) await ok(a, 'Remove', { Name: v });
  });

  it('rwo: one node at a time; refused elsewhere naming the holder; taken over after the holder dies', async () => {
    await ok(a, 'Create', { Name: 'db', Opts: { access: 'rwo' } });
    await ok(a, 'Mount', { Name: 'db', ID: 'a1' });
    const refused = await err(b, 'Mount', { Name: 'db', ID: 'b1' });
    assert.match(refused, /volume db is rwo \(one host at a time\) and node nodeA holds it/);
    await b.plugin('Unmount', { Name: 'db', ID: 'b1' }); // Docker sends it after a failed Mount
    await ok(a, 'Unmount', { Name: 'db', ID: 'a1' });
    await ok(b, 'Mount', { Name: 'db', ID: 'b2' });
    assert.match(await err(a, 'Mount', { Name: 'db', ID: 'a2' }), /node nodeB holds it/);
    // nodeB dies (kill -9): once its heartbeat is older than nodeTimeout, nodeA takes the volume over
    await b.crash();
    await sleep(1800);
    await ok(a, 'Mount', { Name: 'db', ID: 'a3' });
    // nodeB comes back with its old mount recorded: it must not write alongside nodeA
    await b.start();
    assert.match(await err(b, 'Mount', { Name: 'db', ID: 'b3' }), /node nodeA holds it/);
    await b.plugin('Unmount', { Name: 'db', ID: 'b3' });
    await ok(b, 'Unmount', { Name: 'db', ID: 'b2' });
    await ok(a, 'Unmount', { Name: 'db', ID: 'a3' });
  });

  it('a node whose ferryd died with a volume mounted still counts for a removal or a restore (its containers may run on): refused naming it; --force overrides', async () => {
    await ok(b, 'Create', { Name: 'busy' });
    const mp = (await ok(b, 'Mount', { Name: 'busy', ID: 'c1' })).Mountpoint;
    await writeFile(join(mp, 'f'), 'written on nodeB');
    assert.equal((await a.cli('snapshot', 'create', 'busy', '--name', 's')).code, 0);
    assert.equal((await a.cli('commit', 'busy', '-m', 'c1')).code, 0);
    await writeFile(join(mp, 'g'), 'written after the snapshot');
    await b.crash(); // its containers would run on: nothing stops them
    await sleep(1800); // its heartbeat is older than nodeTimeout now
    const removal = await a.cli('volume', 'rm', 'busy');
    assert.equal(removal.code, 1);
    assert.match(removal.stderr, /volume busy is mounted on node nodeB \(1 mount\(s\)\), which sent no heartbeat \(nodeB since \S+\): its ferryd may be down while those containers still run and write\. Stop them there before you remove it\. If that node is down for good, this refusal ends 10 minutes after its last heartbeat \(or pass --force: `ferry volume rm --force busy`\)/);
    assert.match(await err(a, 'Remove', { Name: 'busy' }), /volume busy is mounted on node nodeB/);
    const restore = await a.cli('snapshot', 'restore', 'busy', 's');
    assert.equal(restore.code, 1);
    assert.match(restore.stderr, /volume busy is mounted on node nodeB .*before you restore\. .*\(or pass --force\)$/m);
    const reset = await a.cli('reset', 'busy', '--hard', 'HEAD');
    assert.equal(reset.code, 1);
    assert.match(reset.stderr, /volume busy is mounted on node nodeB .*before you reset/);
    assert.equal(await readFile(join(mp, 'g'), 'utf8'), 'written after the snapshot', 'the data is untouched');
    // the user knows that node is down for good: --force restores now
    const forcedRestore = await a.cli('snapshot', 'restore', '--force', 'busy', 's');
    assert.equal(forcedRestore.code, 0, forcedRestore.stderr);
    const live = JSON.parse((await a.cli('--json', 'volume', 'inspect', 'busy')).stdout).mountpoint as string;
    assert.deepEqual((await readdir(live)).sort(), ['f'], 'the data is the snapshot\'s');
    const forced = await a.cli('volume', 'rm', '--force', 'busy');
    assert.equal(forced.code, 0, forced.stderr);
    await b.start();
    // (its Docker's Unmount, once it learns the container is gone: nodeB stops publishing its use of the volume)
    await b.plugin('Unmount', { Name: 'busy', ID: 'c1' });
  });

  it('rwo: two nodes mounting at the same moment, twenty times: exactly one wins each time', async () => {
    for (let i = 0; i < 20; i++) {
      const name = `rwo-${i}`;
      await ok(a, 'Create', { Name: name, Opts: { access: 'rwo' } });
      const [ra, rb] = await Promise.all([a.plugin('Mount', { Name: name, ID: 'x' }), b.plugin('Mount', { Name: name, ID: 'y' })]);
      const winners = [ra, rb].filter((r) => r.json?.Err === '');
      assert.equal(winners.length, 1, `round ${i}: ${ra.text} / ${rb.text}`);
      await a.plugin('Unmount', { Name: name, ID: 'x' });
      await b.plugin('Unmount', { Name: name, ID: 'y' });
    }
  });

  it('rox: every node mounts it, nobody can write', async () => {
    await ok(a, 'Create', { Name: 'assets' });
    const rw = (await ok(a, 'Mount', { Name: 'assets', ID: 'w' })).Mountpoint;
    await writeFile(join(rw, 'logo.txt'), 'logo');
    await ok(a, 'Unmount', { Name: 'assets', ID: 'w' });
    await ok(a, 'Create', { Name: 'ro-assets', Opts: { access: 'rox' } });
    const pa = (await ok(a, 'Mount', { Name: 'ro-assets', ID: 'r1' })).Mountpoint;
    const pb = (await ok(b, 'Mount', { Name: 'ro-assets', ID: 'r2' })).Mountpoint;
    for (const p of [pa, pb]) await assert.rejects(writeFile(join(p, 'x'), 'x'), /EROFS/);
    await ok(a, 'Unmount', { Name: 'ro-assets', ID: 'r1' });
    await ok(b, 'Unmount', { Name: 'ro-assets', ID: 'r2' });
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(join(a.dataDir, 'ro')), 'the read-only view is unmounted with the last Unmount');
  });

  it('keeps serving what it knows when the share disappears, refuses changes, and recovers when it is back', async () => {
    await ok(a, 'Create', { Name: 'survivor' });
    assert.equal(await unmountRetrying(mnt), 0, 'the share could be unmounted');
    // Docker's Get at start-up must not make it forget volumes: still answered from the cache
    await ok(a, 'Get', { Name: 'survivor' });
    assert.match(await err(a, 'Mount', { Name: 'survivor', ID: 'm1' }), /pool nas is not usable: shared filesystem not mounted/);
    assert.match(await err(b, 'Create', { Name: 'during-outage' }), /pool nas is not usable/);
    assert.deepEqual(await readdir(mnt), [], 'nothing was written into the bare mountpoint');
    const downStatus = (await a.cli('status')).stdout;
    assert.match(downStatus, /^nas\s+dir shared\s+DOWN/m);
    assert.match(downStatus, /^attachments in pool nas unknown: it does not answer here$/m);
    assert.doesNotMatch(downStatus, /no volume of a shared pool is attached anywhere/);
    assert.equal((await run('mount', ['--bind', share, mnt])).code, 0);
    await ok(a, 'Mount', { Name: 'survivor', ID: 'm2' });
    await ok(a, 'Unmount', { Name: 'survivor', ID: 'm2' });
  });
});

describe('a shared pool that ferryd mounts itself', { skip }, () => {
  let base: string;
  let f: Ferryd | undefined;
  after(async () => {
    await f?.destroy();
    if (base) {
      for (let i = 0; i < 3; i++) await run('umount', [join(base, 'mnt')]);
      await rm(base, { recursive: true, force: true });
    }
  });

  it('mounts it at start and mounts it again when it disappears', async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-shared-mount-'));
    const share = join(base, 'export');
    const mnt = join(base, 'mnt');
    await mkdir(share);
    await writeFile(
      join(base, 'ferry.yaml'),
      ['node: solo', 'heartbeatInterval: 200ms', 'nodeTimeout: 1s', 'pools:', '  nas:', `    path: ${mnt}`, '    shared: true', '    mount:', '      type: none', `      device: ${share}`, '      options: bind'].join('\n'),
    );
    f = await startFerryd({ dir: join(base, 'node'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
    assert.equal((await f.plugin('Create', { Name: 'm1', Opts: { pool: 'nas' } })).json.Err, '');
    await access(join(share, 'volumes', 'm1', 'data'));
    assert.equal(await unmountRetrying(mnt), 0, 'the share could be unmounted');
    await sleep(600); // a heartbeat or two: ferryd notices and mounts it again
    assert.ok((await readdir(mnt)).includes('.ferry-pool'), 'mounted again by ferryd');
    assert.equal((await f.plugin('Mount', { Name: 'm1', ID: 'z' })).json.Err, '');
    assert.equal((await f.plugin('Unmount', { Name: 'm1', ID: 'z' })).json.Err, '');
  });
});
