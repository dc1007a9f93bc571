// A restore in a shared pool cut short by kill -9 of the node doing it: no other node mounts the half-swapped volume; the node finishes it when it runs again, or another node redoes it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare, pluginOk, startShareFerryd } from '../helpers/shared-node.js';

/**
 * A restore in a shared pool swaps the data by renames (data → data.old, data.new → data) behind a mark on the
 * share. Killed between the two renames, the volume has no data directory at all; killed after the mark, the
 * old data is still in place but the restore was asked for. Either way another node must not mount it (a
 * Mount there would see nothing, or data that the restarted node then swaps away under it), and the node
 * that began it finishes it at start-up.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');

describe('shared pool: a restore cut short by kill -9', { skip }, () => {
  let base: string;
  let mnt: string;
  const nodes: Ferryd[] = [];
  const startNode = async (node: string, env?: Record<string, string>) => {
    const f = await startShareFerryd(base, mnt, node, { ...(env ? { env } : {}), logLevel: 'info' });
    nodes.push(f);
    return f;
  };
  const ok = pluginOk;
  const cliOk = async (f: Ferryd, ...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  /** Write `text` into file `name` of the volume through a Mount on `f`. */
  const put = async (f: Ferryd, volume: string, text: string) => {
    const p = (await ok(f, 'Mount', { Name: volume, ID: 'put' })).Mountpoint;
    await writeFile(join(p, 'file'), text);
    await ok(f, 'Unmount', { Name: volume, ID: 'put' });
  };
  const get = async (f: Ferryd, volume: string) => {
    const p = (await ok(f, 'Mount', { Name: volume, ID: 'get' })).Mountpoint;
    try {
      return await readFile(join(p, 'file'), 'utf8');
    } finally {
      await ok(f, 'Unmount', { Name: volume, ID: 'get' });
    }
  };
  /** A (paused at `point`) restores `volume` to snapshot base and is killed there; resolves when A is dead. */
  const killMidRestore = async (volume: string, point: string) => {
    const said = join(base, `paused-${volume}`);
    const a = await startNode('nodeA', { FERRY_TEST_PAUSE: `${point}:30000`, FERRY_TEST_PAUSE_FILE: said });
    const pending = a.cli('snapshot', 'restore', volume, 'base');
    const deadline = Date.now() + 20_000;
    while (!(existsSync(said) && readFileSync(said, 'utf8').includes(point))) {
      assert.ok(Date.now() < deadline, `ferryd did not reach ${point}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await a.crash();
    await pending;
    nodes.splice(nodes.indexOf(a), 1);
  };
  const golden = 'the snapshot\n'.repeat(1000);
  const later = 'written after the snapshot\n'.repeat(1000);

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-restorecrash-'));
    mnt = await mountBindShare(base);
  });
  after(async () => {
    for (const f of nodes.splice(0)) await f.stop();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  for (const point of ['swap-marked', 'swap-renamed']) {
    it(`killed at ${point}: B refuses to mount, A finishes the restore when it starts again`, async () => {
      const v = `v-${point}`;
      const b = await startNode('nodeB');
      await ok(b, 'Create', { Name: v });
      await put(b, v, golden);
      await cliOk(b, 'snapshot', 'create', v, '--name', 'base');
      await put(b, v, later);
      await killMidRestore(v, point);

      const refused = await b.plugin('Mount', { Name: v, ID: 'b1' });
      assert.match(String(refused.json?.Err), /restore.*node nodeA/, `B must not mount a volume whose restore is unfinished: ${refused.text}`);

      const a = await startNode('nodeA'); // no pause: start-up finishes the swap (in the background)
      const deadline = Date.now() + 15_000;
      for (;;) {
        const r = await b.plugin('Mount', { Name: v, ID: 'b2' });
        if (r.json?.Err === '') break;
        assert.ok(Date.now() < deadline, `the restore was not finished by A's start-up: ${r.text}\n${await a.logs()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await ok(b, 'Unmount', { Name: v, ID: 'b2' });
      assert.equal(await get(b, v), golden, 'the restore asked for is what the volume holds, byte for byte');
      assert.match(await a.logs(), /finishing an interrupted restore in a shared pool/);
      assert.ok(!existsSync(join(a.dataDir, 'restores', `nas.${v}.json`)), 'the note is dropped once finished');
      await a.stop();
      nodes.splice(nodes.indexOf(a), 1);
      await b.stop();
      nodes.splice(nodes.indexOf(b), 1);
    });
  }

  it('A never comes back: B restores again, and a later start of A leaves B\'s restore alone', async () => {
    const v = 'v-redo';
    const b = await startNode('nodeB');
    await ok(b, 'Create', { Name: v });
    await put(b, v, golden);
    await cliOk(b, 'snapshot', 'create', v, '--name', 'base');
    await put(b, v, later);
    await cliOk(b, 'snapshot', 'create', v, '--name', 'later');
    await killMidRestore(v, 'swap-renamed');
    // once A's beat has expired (nodeTimeout 1.5 s), B's restore breaks A's change mark and ends the swap with the data it asks for
    const until = Date.now() + 20_000;
    for (;;) {
      const r = await b.cli('snapshot', 'restore', v, 'later');
      if (r.code === 0) break;
      assert.match(r.stderr, /busy: node nodeA/, 'refused only while A may still be alive');
      assert.ok(Date.now() < until, r.stderr);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await get(b, v), later);
    const p = (await ok(b, 'Mount', { Name: v, ID: 'holding' })).Mountpoint;
    const a = await startNode('nodeA');
    const deadline = Date.now() + 10_000;
    while (existsSync(join(a.dataDir, 'restores', `nas.${v}.json`))) {
      assert.ok(Date.now() < deadline, `A kept its note: ${await a.logs()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(await a.logs(), /finished or redone elsewhere/);
    assert.equal(await readFile(join(p, 'file'), 'utf8'), later, 'B\'s mounted data was not swapped away');
    await ok(b, 'Unmount', { Name: v, ID: 'holding' });
  });
});
