// The space of shared volumes: one node measures each (the one that runs its schedules), every node shows it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare } from '../helpers/shared-node.js';
import type { NodeUsage } from '../../src/cluster/shared-store.js';
import type { VolumeUsage } from '../../src/wire/types.js';

/**
 * Before, every node stat'ed and read the snapshot directory of every shared volume every 30 s: with 1,000
 * volumes that was ~150 file operations per second per idle node at the NAS (bench/share-idle.ts). Now the node
 * that looks after a volume (the first live node that has it attached, else the first live node) measures it
 * and publishes ROOT/usage/NODE.json; the others read that file. The test checks what each node measured
 * (its own usage cache and its published file) and that both nodes show the same figures.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');

describe('shared pool: volume usage measured once, shown everywhere', { skip }, () => {
  let base: string;
  let mnt: string;
  let a: Ferryd;
  let b: Ferryd;
  const startNode = async (node: string) => {
    const dir = join(base, node);
    await mkdir(dir, { recursive: true });
    const yaml = [`node: ${node}`, 'heartbeatInterval: 200ms', 'nodeTimeout: 1500ms', 'defaultPool: nas', 'pools:', '  nas:', `    path: ${mnt}`, '    shared: true'].join('\n');
    await writeFile(join(dir, 'ferry.yaml'), yaml);
    return startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node], env: { FERRY_USAGE_INTERVAL_MS: '300', FERRY_USAGE_SHARED_SPREAD: '3' } });
  };
  const ok = async (f: Ferryd, method: string, body: Record<string, unknown>) => {
    const r = await f.plugin(method, body);
    assert.equal(r.json?.Err, '', `${method} ${JSON.stringify(body)}: ${r.text}`);
    return r.json;
  };
  const usageOn = async (f: Ferryd): Promise<Map<string, VolumeUsage>> => {
    const r = await f.cli('volume', 'ls', '--json');
    assert.equal(r.code, 0, r.stderr);
    return new Map((JSON.parse(r.stdout) as Array<{ name: string; usage: VolumeUsage }>).map((v) => [v.name, v.usage]));
  };
  const publishedBy = async (node: string): Promise<NodeUsage['volumes']> =>
    (JSON.parse(await readFile(join(mnt, 'usage', `${node}.json`), 'utf8').catch(() => '{"volumes":{}}')) as NodeUsage).volumes;
  const published = async (node: string): Promise<string[]> => Object.keys(await publishedBy(node)).sort();
  /** The volume names a node's own usage cache has walked. */
  const walked = async (f: Ferryd): Promise<string[]> => {
    const saved = JSON.parse(await readFile(join(f.dataDir, 'usage.json'), 'utf8').catch(() => '{"data":{}}')) as { data: Record<string, unknown> };
    return [...new Set(Object.keys(saved.data).map((k) => k.split('\0')[0]!))].sort();
  };
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> => {
    const end = Date.now() + ms;
    let last: unknown;
    for (;;) {
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const fill = async (f: Ferryd, name: string, bytes: number) => {
    const p = (await ok(f, 'Mount', { Name: name, ID: `fill-${name}` })).Mountpoint;
    await writeFile(join(p, `file-${bytes}`), Buffer.alloc(bytes, 7));
    await ok(f, 'Unmount', { Name: name, ID: `fill-${name}` });
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-shusage-'));
    mnt = await mountBindShare(base);
    a = await startNode('nodeA');
    b = await startNode('nodeB');
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('splits the walking between the nodes, publishes the figures, and both nodes show the same sizes', async () => {
    const sizes: Record<string, number> = { v1: 1 << 20, v2: 2 << 20, v3: 3 << 20, held: 512 << 10 };
    for (const [name, n] of Object.entries(sizes)) {
      await ok(a, 'Create', { Name: name });
      await fill(a, name, n);
    }
    // a container on B uses `held`: B looks after it from now on; nodeA (first by name) after the others
    await ok(b, 'Get', { Name: 'held' });
    await ok(b, 'Mount', { Name: 'held', ID: 'c1' });

    const expect = (u: VolumeUsage | undefined, name: string) => u?.dataBytes !== null && u?.dataBytes !== undefined && u.dataBytes >= sizes[name]! && u.dataBytes < sizes[name]! + (1 << 20);
    const seen = async (f: Ferryd) => {
      const u = await usageOn(f);
      return Object.keys(sizes).every((n) => expect(u.get(n), n)) ? u : undefined;
    };
    const onA = await until('sizes on node A', () => seen(a));
    const onB = await until('sizes on node B', () => seen(b));
    for (const n of Object.keys(sizes)) assert.equal(onB.get(n)!.dataBytes, onA.get(n)!.dataBytes, `${n}: both nodes show the same figure`);

    await until('the published files', async () => {
      const [pa, pb] = [(await published('nodeA')).join(), (await published('nodeB')).join()];
      if (pa === 'v1,v2,v3' && pb === 'held') return true;
      throw new Error(`nodeA published ${pa || 'nothing'}, nodeB ${pb || 'nothing'}`);
    });
    // B walked only what it looks after (A walked everything before B mounted `held`, and nothing since needs it again)
    assert.deepEqual(await walked(b), ['held']);

    // data grows on a volume A looks after: B shows the new size after A's next pass
    await fill(a, 'v2', 4 << 20);
    sizes.v2 = (2 << 20) + (4 << 20);
    await until('the new size of v2 on node B', async () => (expect((await usageOn(b)).get('v2'), 'v2') ? true : undefined));
    assert.deepEqual(await walked(b), ['held'], 'B still walks only its own');

    await ok(b, 'Unmount', { Name: 'held', ID: 'c1' });
  });

  it('looks at an idle volume without snapshots again only when its directory changed, and then sees the change', async () => {
    // One pass in three lists the pool (FERRY_USAGE_SHARED_SPREAD=3); what keeps A from looking at `quiet` again (a
    // LOOKUP or two at the NAS per volume and pass) is that listing, where its directory is unchanged, and between
    // listings the last one (the rule itself: test/unit/usage-turns.test.ts).
    for (const name of ['quiet', 'snapshotted']) await ok(a, 'Create', { Name: name });
    const on = async (vol: string) => (await publishedBy('nodeA'))[vol];
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await until('A publishes both volumes', async () => ((await on('snapshotted')) ? await on('quiet') : undefined));
    await sleep(1000); // (what the creates left settles)
    const first = (await on('quiet'))!;
    await sleep(2000); // ~6 passes
    assert.equal((await on('quiet'))?.checkedAt, first.checkedAt, 'an idle volume whose directory did not change is not looked at again');

    // the first snapshot, made on B, changes the volume's directory (its snapshots directory appears): A looks again
    const snap = await b.cli('snapshot', 'create', 'snapshotted', '--name', 's1');
    assert.equal(snap.code, 0, snap.stderr);
    await until("A's own figures of the snapshot made on B", async () => {
      const u = await on('snapshotted');
      if (u?.snapshots === 1 && (u.snapshotBytes ?? -1) >= 0) return true;
      throw new Error(`A published ${JSON.stringify(u)}`);
    });
    assert.equal((await on('quiet'))?.checkedAt, first.checkedAt, 'the other volume is still not looked at');
  });
});
