// Backups of one shared volume from two nodes at once: neither removes the snapshot the other reads, and a backup whose snapshot is removed under it fails, never recorded short.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, run, type Ferryd } from '../helpers/ferryd.js';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { mountBindShare, sharedConfig } from '../helpers/shared-node.js';
import { populate, fingerprint } from '../helpers/tree.js';
import type { Backup, Job, Snapshot } from '../../src/wire/types.js';

/**
 * Found by a user trial (two hosts on GlusterFS): A's and B's backups of one volume ran together; B's, ending
 * first, removed every other snapshot made for backups, A's too while A read it. A's backup then skipped the
 * files it had not read yet as "vanished" and said it succeeded: 557 of 800 files, the ones being written gone.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for mount --bind'], 'shared pools');

describe('backups of a shared volume from two nodes', { skip }, () => {
  let base: string;
  let mnt: string;
  let a: Ferryd;
  let b: Ferryd;
  const startNode = async (node: string, env: Record<string, string> = {}) => {
    const dir = join(base, node);
    await mkdir(dir, { recursive: true });
    const yaml = [
      sharedConfig(node, mnt, { heartbeatMs: 200, nodeTimeoutMs: 1500 }),
      'backupTargets:',
      '  t:',
      `    url: file://${join(base, 'repo')}`,
      `    passwordFile: ${join(base, 'key')}`,
    ].join('\n');
    await writeFile(join(dir, 'ferry.yaml'), yaml);
    return startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', node], env });
  };
  const ok = async (f: Ferryd, ...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const backups = async (f: Ferryd): Promise<Backup[]> => JSON.parse(await ok(f, '--json', 'backup', 'ls', '--target', 't', '--volume', 'db'));
  // times come back to the microsecond (what Node's utimes can set; docs/backup-format.md)
  const us = (fp: ReturnType<typeof fingerprint>) => Object.fromEntries(Object.entries(fp).map(([k, v]) => [k, { ...v, mtime: String((v as { mtime?: string }).mtime ?? '').slice(0, -3) }]));
  const snapshotsOf = async (f: Ferryd): Promise<Snapshot[]> => JSON.parse(await ok(f, '--json', 'snapshot', 'ls', '--all', 'db'));

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-backup-shared-'));
    mnt = await mountBindShare(base);
    await writeFile(join(base, 'key'), 'correct horse battery staple\n', { mode: 0o600 });
    await mkdir(join(base, 'repo'));
    // A's backup waits after making its snapshot: B's backup runs from start to end meanwhile
    a = await startNode('nodeA', { FERRY_TEST_PAUSE: 'backup-snapshot-made:4000' });
    b = await startNode('nodeB');
    await ok(a, 'backup', 'init', '--target', 't');
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    for (let i = 0; i < 3; i++) await run('umount', [mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it("B's backup leaves the snapshot A's backup reads; A's backup holds every file", async () => {
    await ok(a, 'volume', 'create', 'db');
    const data = JSON.parse(await ok(a, '--json', 'volume', 'inspect', 'db')).mountpoint as string;
    populate(data, 300);
    const expected = us(fingerprint(data));
    const jobA = JSON.parse(await ok(a, '--json', 'backup', 'create', '--no-wait', 'db', '--target', 't')) as Job;
    await ok(b, 'backup', 'create', 'db', '--target', 't');
    const endA = JSON.parse((await a.cli('--json', 'job', 'wait', jobA.id)).stdout) as Job;
    assert.equal(endA.state, 'succeeded', JSON.stringify(endA.error));
    const all = await backups(a);
    assert.deepEqual(all.map((x) => x.node).sort(), ['nodeA', 'nodeB']);
    assert.equal(all[0]!.files, all[1]!.files, 'both backups hold as many files');
    // A's (ended last) kept its own base; B's base is B's to remove
    const bases = (await snapshotsOf(a)).filter((s) => s.origin === 'backup');
    assert.deepEqual(bases.map((s) => s.node).sort(), ['nodeA', 'nodeB']);
    // each restored on B, byte for byte
    for (const x of all) {
      await ok(b, 'backup', 'restore', x.url, `db-${x.node}`);
      assert.deepEqual(us(fingerprint(JSON.parse(await ok(b, '--json', 'volume', 'inspect', `db-${x.node}`)).mountpoint)), expected, `the backup made on ${x.node}`);
    }
  });

  it('a backup whose snapshot is removed while it waits to read it fails, saying so; nothing is recorded', async () => {
    const before = (await backups(a)).length;
    const jobA = JSON.parse(await ok(a, '--json', 'backup', 'create', '--no-wait', 'db', '--target', 't')) as Job;
    let made: Snapshot | undefined;
    for (let i = 0; i < 100 && !made; i++) {
      made = (await snapshotsOf(a)).find((s) => s.origin === 'backup' && s.node === 'nodeA' && s.createdAt >= jobA.startedAt.slice(0, 19));
      if (!made) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(made, "A's backup made its snapshot");
    await ok(b, 'snapshot', 'rm', 'db', made.id);
    const endA = await a.cli('job', 'wait', jobA.id);
    assert.equal(endA.code, 1, endA.stdout);
    assert.match(endA.stderr, new RegExp(`backup of db: snapshot ${made.name}, which it read, was removed while it was read .*no backup was recorded, run it again`));
    assert.equal((await backups(a)).length, before, 'no backup recorded short');
  });
});
