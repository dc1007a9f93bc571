/**
 * Image pools on a share (issue 16, item 3): two ferryd "hosts" on this machine share one directory (bind-mounted
 * where the pool lives, as an NFS mount would be) holding filesystem images. A volume is attached by one host at a
 * time (rwo): it moves between the hosts with every byte, 20 Mounts at once from both hosts have one winning host,
 * and a snapshot, a resize or a Mount on the other host is refused while one host has it. Docker's plugin calls are
 * driven directly, as Docker would make them; the e2e test runs containers.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { loopFsPrerequisites } from '../helpers/loopfs.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare } from '../helpers/shared-node.js';
import type { VolumeDetail } from '../../src/wire/types.js';

const MiB = 2 ** 20;
const skip = skipUnless([...(isRoot() ? [] : ['root (uid 0) for mount --bind']), ...loopFsPrerequisites('ext4')], 'shared image pools');
const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

async function loops(image: string): Promise<string[]> {
  const r = await run('losetup', ['-n', '-O', 'NAME', '-j', image]);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** Is `dir` a mount point (in /proc/self/mountinfo)? */
async function mounted(dir: string): Promise<boolean> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === dir);
}

describe('image pools on a share: one host at a time, moving between hosts', { skip }, () => {
  let base: string;
  let mnt: string;
  const nodes: Record<string, Ferryd> = {};
  const config = (node: string) =>
    [`node: ${node}`, 'heartbeatInterval: 200ms', 'nodeTimeout: 2000ms', 'defaultPool: nas', 'pools:', '  nas:', '    kind: image', '    shared: true', '    defaultSize: 64M', `    path: ${mnt}`].join('\n');
  const startNode = async (node: string) => {
    const dir = join(base, node);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'ferry.yaml'), config(node));
    nodes[node] = await startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node] });
    return nodes[node]!;
  };
  const cli = async (f: Ferryd, ...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const mount = async (f: Ferryd, v: string, id: string) => {
    const r = await f.plugin('Mount', { Name: v, ID: id });
    assert.equal(r.json.Err, '', `Mount ${v} ${id}: ${String(r.json.Err)}`);
    return r.json.Mountpoint as string;
  };
  const unmount = async (f: Ferryd, v: string, id: string) => assert.equal((await f.plugin('Unmount', { Name: v, ID: id })).json.Err, '');
  const image = (v: string) => join(mnt, 'volumes', v, 'disk.img');

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-imgshare-'));
    mnt = await mountBindShare(base);
    await startNode('nodeA');
    await startNode('nodeB');
  });
  after(async () => {
    for (const f of Object.values(nodes)) await f.destroy().catch(() => undefined);
    // whatever a failed test left mounted under the test's directory: unmount it (which frees its loop device)
    for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').reverse()) {
      const mp = line.split(' ')[4];
      if (mp?.startsWith(`${base}/`) && mp !== mnt) await run('umount', ['-l', mp]);
    }
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('a volume is rwo, refuses access=rwx with a reason, and moves between the hosts with every byte', async (t) => {
    const { nodeA: a, nodeB: b } = nodes as { nodeA: Ferryd; nodeB: Ferryd };
    const rwx = await a.cli('volume', 'create', 'many', '-o', 'access=rwx');
    assert.equal(rwx.code, 1);
    assert.match(rwx.stderr, /option access=rwx: pool nas holds filesystem images on a share, which one host at a time mounts \(access=rwo\)/);
    // ferry status says what the pool is, and that a takeover needs fenceCommand to be safe for images
    const status = await cli(a, 'status');
    assert.match(status, /^nas\s+image shared\s+ok\s[\s\S]*^nas: .*\n  sizes: image \(ext4; xfs with -o fs=xfs; space reserved\)$/m);
    assert.match(status, /WARNINGS[\s\S]*pool nas holds filesystem images on a share and no fenceCommand is set/);
    await cli(a, 'volume', 'create', 'pg', '-o', 'uid=999');
    const info = JSON.parse(await cli(b, '--json', 'volume', 'inspect', 'pg')) as VolumeDetail;
    assert.equal(info.options.access, 'rwo', 'the other host knows it, as rwo');
    assert.equal(info.size?.limitBytes, 64 * MiB);

    const mpA = await mount(a, 'pg', 'a1');
    assert.ok(mpA.startsWith(a.dataDir), `mounted on host A's own directory (${mpA}), not on the share`);
    assert.ok(await mounted(mpA));
    await writeFile(join(mpA, 'table'), randomBytes(5 * MiB));
    const sum = await sha(join(mpA, 'table'));

    // host B: a Mount, a snapshot and a resize are refused while A has it, naming A
    const refused = await b.plugin('Mount', { Name: 'pg', ID: 'b1' });
    assert.match(refused.json.Err, /volume pg is rwo \(one host at a time\) and node nodeA holds it/);
    const snap = await b.cli('snapshot', 'create', 'pg');
    assert.equal(snap.code, 1);
    assert.match(snap.stderr, /cannot take a snapshot of volume pg here: the image of volume pg is attached on node nodeA.*do it on nodeA/);
    const grow = await b.cli('volume', 'resize', 'pg', '96M');
    assert.match(grow.stderr, /cannot resize volume pg here: the image of volume pg is attached on node nodeA/);
    assert.equal((await loops(image('pg'))).length, 1, 'attached once');

    // the move: A lets go, B takes it
    await unmount(a, 'pg', 'a1');
    assert.equal(await mounted(mpA), false, 'A unmounted it');
    assert.deepEqual(await loops(image('pg')), [], 'and freed its loop device');
    const t0 = performance.now();
    const mpB = await mount(b, 'pg', 'b2');
    const moveMs = performance.now() - t0;
    assert.equal(await sha(join(mpB, 'table')), sum, 'every byte arrived on B');
    await writeFile(join(mpB, 'from-b'), 'written on B');
    await unmount(b, 'pg', 'b2');
    const mpA2 = await mount(a, 'pg', 'a3');
    assert.equal(await readFile(join(mpA2, 'from-b'), 'utf8'), 'written on B');
    assert.equal(await sha(join(mpA2, 'table')), sum);
    await unmount(a, 'pg', 'a3');
    // with nobody attached, a snapshot on B holds the volume for the time it reads it, and gives it back
    await cli(b, 'snapshot', 'create', 'pg', '--name', 'moved');
    assert.deepEqual(await loops(image('pg')), []);
    await mount(a, 'pg', 'a4');
    await unmount(a, 'pg', 'a4');
    // a clone of that snapshot is a new image on the share, staged out of sight and filled through a mount of B's
    await cli(b, 'volume', 'create', 'pg-copy', '-o', 'from=pg@moved');
    const mpC = await mount(a, 'pg-copy', 'c1');
    assert.equal(await sha(join(mpC, 'table')), sum, 'the clone holds every byte');
    await unmount(a, 'pg-copy', 'c1');
    assert.deepEqual(await readdir(join(mnt, 'staging')), [], 'no staged create left behind');
    // nothing but the empty mount points of the hosts' own (none left mounted)
    for (const f of [a, b]) assert.deepEqual(await readdir(join(f.dataDir, 'image-mounts', 'nas')), []);
    t.diagnostic(`shared image volume moved from A to B (Mount on B after the Unmount on A returned): ${moveMs.toFixed(0)} ms`);
  });

  it('20 Mounts at once, 10 from each host: one host wins, the image is attached once, the losers are told who holds it', async () => {
    const { nodeA: a, nodeB: b } = nodes as { nodeA: Ferryd; nodeB: Ferryd };
    await cli(a, 'volume', 'create', 'race');
    const calls = Array.from({ length: 20 }, (_, i) => {
      const f = i % 2 === 0 ? a : b;
      return f.plugin('Mount', { Name: 'race', ID: `m${i}` }).then((r) => ({ host: f === a ? 'nodeA' : 'nodeB', id: `m${i}`, err: r.json.Err as string }));
    });
    const results = await Promise.all(calls);
    const won = results.filter((r) => r.err === '');
    const winners = new Set(won.map((r) => r.host));
    assert.equal(winners.size, 1, `one host won: ${JSON.stringify(results)}`);
    const winner = [...winners][0]!;
    assert.equal(won.length, 10, 'every Mount of the winning host succeeded');
    for (const r of results.filter((x) => x.err !== '')) {
      assert.notEqual(r.host, winner);
      assert.match(r.err, new RegExp(`volume race is rwo \\(one host at a time\\) and node ${winner} holds it`));
    }
    assert.equal((await loops(image('race'))).length, 1, 'one attach');
    const w = winner === 'nodeA' ? a : b;
    for (const r of won) await unmount(w, 'race', r.id);
    assert.deepEqual(await loops(image('race')), [], 'detached after the last Unmount');
  });

  it('an image that cannot be unmounted at the last Unmount (a process still in it) stays held by its host until it is free', async () => {
    const { nodeA: a, nodeB: b } = nodes as { nodeA: Ferryd; nodeB: Ferryd };
    await cli(a, 'volume', 'create', 'busy');
    const mp = await mount(a, 'busy', 'u1');
    // a process outside Docker's view keeps the filesystem busy (its working directory is in it)
    const squatter = spawn('sleep', ['600'], { cwd: mp, stdio: 'ignore' });
    try {
      await unmount(a, 'busy', 'u1');
      assert.ok(await mounted(mp), 'still mounted: umount refused while the process is in it');
      assert.match((await b.plugin('Mount', { Name: 'busy', ID: 'ub' })).json.Err, /node nodeA holds it/, 'so the other host may not mount it');
    } finally {
      squatter.kill('SIGKILL');
    }
    // a later heartbeat of A lets go of it: unmounted, detached, the lock given back
    const deadline = Date.now() + 10_000;
    while ((await mounted(mp)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await mounted(mp), false, 'unmounted once nothing used it');
    assert.deepEqual(await loops(image('busy')), []);
    let err = 'not tried';
    while (Date.now() < deadline && (err = (await b.plugin('Mount', { Name: 'busy', ID: 'ub2' })).json.Err) !== '') await new Promise((r) => setTimeout(r, 100));
    assert.equal(err, '', 'and the other host mounts it');
    await unmount(b, 'busy', 'ub2');
  });

  it('kill -9 of ferryd while attached: after the restart still mounted and held; the other host is still refused', async () => {
    const { nodeA: a, nodeB: b } = nodes as { nodeA: Ferryd; nodeB: Ferryd };
    await cli(a, 'volume', 'create', 'crashy');
    const mp = await mount(a, 'crashy', 'k1');
    await writeFile(join(mp, 'x'), 'before the crash');
    await a.crash();
    await a.start();
    assert.ok(await mounted(mp), 'still mounted after the restart');
    assert.equal((await loops(image('crashy'))).length, 1);
    assert.match((await b.plugin('Mount', { Name: 'crashy', ID: 'kb' })).json.Err, /node nodeA holds it/);
    await unmount(a, 'crashy', 'k1');
    assert.equal(await mounted(mp), false, 'the Unmount after the restart detaches it');
    assert.equal(await readFile(join(await mount(b, 'crashy', 'kb2'), 'x'), 'utf8'), 'before the crash');
    await unmount(b, 'crashy', 'kb2');
    assert.deepEqual(await loops(image('crashy')), []);
  });
});
