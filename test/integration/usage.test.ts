/**
 * Space that everybody sees (issue 11, item 5), on a real ferryd whose pool is on ext4 (hard-link
 * snapshots): a volume of N MiB backed up keeps a snapshot that is a full copy, and inspect, ls, the API
 * and /metrics say so (data ~N, snapshots ~N); after `volume rm` the trash shows ~2N; with
 * `backup-keep-base=false` (per volume) or `keepBase: false` (per target) no snapshot stays after the
 * backup, the next backup still works and restores byte for byte.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, appendFile, statfs } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import { assertSameTree } from '../helpers/backup.js';
import { makeLoopFs, loopFsPrerequisites, type LoopFs } from '../helpers/loopfs.js';
import { skipUnless } from '../helpers/prereq.js';
import type { VolumeUsage } from '../../src/volumes/usage-types.js';

const MiB = 1024 * 1024;
const N = 12; // MiB written into each volume

describe('volume usage: data, snapshots and trash, on an ext4 pool', async () => {
  let base: string;
  let f: Ferryd;
  const onExt4 = (await statfs(tmpdir())).type === 0xef53;

  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const data = (v: string) => join(f.dataDir, 'volumes', v, 'data');
  const fill = async (v: string, mib: number) => {
    for (let i = 0; i < mib; i++) await writeFile(join(data(v), `f${i}`), randomBytes(MiB));
  };
  /** Within [n, n + slack] MiB: allocated bytes add a block per file and the directories. */
  const about = (bytes: number | null | undefined, n: number, what: string, slack = 0.5) => {
    assert.equal(typeof bytes, 'number', `${what} is measured`);
    assert.ok(bytes! >= n * MiB && bytes! <= (n + slack) * MiB, `${what}: ${bytes} bytes, expected about ${n} MiB`);
  };
  const metric = (text: string, name: string, volume: string) => {
    const m = new RegExp(`^${name}\\{volume="${volume}",pool="local"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-usage-'));
    await writeFile(join(base, 'key'), 'usage test secret\n', { mode: 0o600 });
    await mkdir(join(base, 'repo'));
    await mkdir(join(base, 'repo2'));
    await writeFile(
      join(base, 'ferry.yaml'),
      ['backupTargets:', '  nas:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'key')}`, '  lean:', `    url: file://${join(base, 'repo2')}`, `    passwordFile: ${join(base, 'key')}`, '    keepBase: false'].join('\n'),
    );
    f = await startFerryd({ dir: join(base, 'host'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
    await ok('backup', 'init', '--target', 'nas');
    await ok('backup', 'init', '--target', 'lean');
  });
  after(async () => {
    await f?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('the pool of this test is ext4 (hard-link snapshots)', { skip: onExt4 ? false : 'the temp dir is not on ext4' }, async () => {
    assert.match(await ok('status'), /hardlink/);
  });

  it(`a backed-up ${N} MiB volume: data ${N} MiB and snapshots ${N} MiB in inspect, ls, the API and /metrics`, async () => {
    await ok('volume', 'create', 'sized');
    await fill('sized', N);
    assert.match(await ok('backup', 'create', 'sized', '--target', 'nas'), /backup=/);
    const inspected = JSON.parse(await ok('--json', 'volume', 'inspect', 'sized', '--usage')) as { usage: VolumeUsage };
    about(inspected.usage.dataBytes, N, 'inspect data');
    about(inspected.usage.snapshotBytes, N, 'inspect snapshots', 0.1);
    assert.equal(inspected.usage.snapshots, 1);
    assert.equal(inspected.usage.trashBytes, 0);
    assert.ok(inspected.usage.measuredAt && Date.parse(inspected.usage.measuredAt) <= Date.now());
    const text = await ok('volume', 'inspect', 'sized');
    assert.match(text, /Data:\s+1[0-9](\.\d)? MiB \(measured (just now|\d+ seconds? ago)\)/);
    assert.match(text, /Snapshots:\s+12 MiB held only by its 1 snapshot\(s\)/);

    // ls and the API give the cached figures, without a walk
    const listed = (JSON.parse(await ok('--json', 'volume', 'ls')) as Array<{ name: string; usage: VolumeUsage }>).find((v) => v.name === 'sized')!;
    assert.deepEqual(listed.usage, inspected.usage);
    const table = await ok('volume', 'ls');
    assert.match(table, /DATA\s+SNAPSHOTS/);
    assert.match(table.split('\n').find((l) => l.startsWith('sized'))!, /\s1[0-9](\.\d)? MiB\s+12 MiB\s/);
    const api = await unixRequest(f.apiSocket, 'GET', '/v1/volumes/sized');
    assert.equal(api.status, 200);
    assert.deepEqual(api.json.usage, inspected.usage);

    const m = (await unixRequest(f.apiSocket, 'GET', '/metrics')).text;
    assert.equal(metric(m, 'ferry_volume_data_bytes', 'sized'), inspected.usage.dataBytes);
    assert.equal(metric(m, 'ferry_volume_snapshot_bytes', 'sized'), inspected.usage.snapshotBytes);
    assert.ok(metric(m, 'ferry_volume_usage_measured_timestamp_seconds', 'sized')! > 0);
    assert.equal(m.match(/^ferry_volume_data_bytes\{volume="sized"/gm)?.length, 1, 'one series per volume');
  });

  it('a snapshot made or removed shows in inspect at once, not at the next pass of the usage walk (30 s)', async () => {
    const count = async () => (JSON.parse(await ok('--json', 'volume', 'inspect', 'sized')) as { usage: VolumeUsage }).usage;
    const until = async (what: string, want: (u: VolumeUsage) => boolean) => {
      const deadline = Date.now() + 10_000;
      for (let u = await count(); ; u = await count()) {
        if (want(u)) return u;
        assert.ok(Date.now() < deadline, `${what}: still ${JSON.stringify(u)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const before = (await count()).snapshots;
    await writeFile(join(data('sized'), 'f0'), randomBytes(MiB));
    await ok('snapshot', 'create', 'sized', '--name', 'extra');
    await until('the new snapshot is counted', (u) => u.snapshots === before + 1);
    await ok('snapshot', 'rm', 'sized', 'extra');
    const u = await until('the removed snapshot is no longer counted', (x) => x.snapshots === before);
    about(u.snapshotBytes, N, 'what the snapshots hold, once extra is gone', 1.1);
    assert.match(await ok('volume', 'inspect', 'sized'), new RegExp(`held only by its ${before} snapshot\\(s\\)`));
  });

  it('after volume rm, the trash shows what it holds (data and snapshots)', async () => {
    await ok('volume', 'rm', 'sized');
    const trash = JSON.parse(await ok('--json', 'trash', 'ls', '--usage')) as Array<{ name: string; bytes: number | null }>;
    about(trash.find((t) => t.name === 'sized')?.bytes, 2 * N, 'trash entry', 0.7);
    assert.match(await ok('trash', 'ls'), /SIZE[\s\S]*sized\s.*\s2[0-9](\.\d)? MiB$/m);
    const m = (await unixRequest(f.apiSocket, 'GET', '/metrics')).text;
    about(metric(m, 'ferry_volume_trash_bytes', 'sized'), 2 * N, 'trash metric', 0.7);
    assert.equal(metric(m, 'ferry_volume_data_bytes', 'sized'), undefined, 'no data series for a removed volume');
    // a new volume of that name shows the old one's trash apart
    await ok('volume', 'create', 'sized');
    const again = JSON.parse(await ok('--json', 'volume', 'inspect', 'sized', '--usage')) as { usage: VolumeUsage };
    about(again.usage.trashBytes, 2 * N, 'trash of the name', 0.7);
    await ok('volume', 'rm', '--purge', 'sized');
    await ok('trash', 'purge', 'sized');
  });

  it('the figures survive a restart of ferryd (DATA_DIR/usage.json), with the time of their walk', async () => {
    await ok('volume', 'create', 'kept');
    await fill('kept', 2);
    const before = (JSON.parse(await ok('--json', 'volume', 'inspect', 'kept', '--usage')) as { usage: VolumeUsage }).usage;
    about(before.dataBytes, 2, 'data before the restart');
    assert.equal(await f.stop(), 0);
    await f.start();
    const after = (JSON.parse(await ok('--json', 'volume', 'inspect', 'kept')) as { usage: VolumeUsage }).usage;
    assert.equal(after.dataBytes, before.dataBytes);
    assert.equal(after.measuredAt, before.measuredAt, 'not walked again: nothing changed');
  });

  for (const how of ['volume option backup-keep-base=false', 'target keepBase: false']) {
    it(`${how}: no snapshot stays after a backup; the next backup works and restores byte for byte`, async () => {
      const vol = how.startsWith('volume') ? 'lean-opt' : 'lean-target';
      const target = how.startsWith('volume') ? 'nas' : 'lean';
      await ok('volume', 'create', vol, ...(how.startsWith('volume') ? ['-o', 'backup-keep-base=false'] : []));
      await fill(vol, N);
      await ok('backup', 'create', vol, '--target', target);
      assert.deepEqual(JSON.parse(await ok('--json', 'snapshot', 'ls', vol)), []);
      const u = (JSON.parse(await ok('--json', 'volume', 'inspect', vol, '--usage')) as { usage: VolumeUsage }).usage;
      about(u.dataBytes, N, 'data');
      assert.equal(u.snapshotBytes, 0);
      await appendFile(join(data(vol), 'f0'), 'one more line\n');
      await writeFile(join(data(vol), 'new'), randomBytes(1000));
      const url = (await ok('backup', 'create', vol, '--target', target)).trim().split('\n').pop()!;
      assert.match(url, /backup=[0-9a-f]+/);
      assert.deepEqual(JSON.parse(await ok('--json', 'snapshot', 'ls', vol)), []);
      await ok('backup', 'restore', url, `${vol}-back`);
      assertSameTree(data(vol), data(`${vol}-back`));
    });
  }
});

describe('volume usage on a btrfs pool: snapshot space is not faked', { skip: skipUnless(loopFsPrerequisites('btrfs'), 'usage on btrfs (a loop-mounted btrfs)') }, () => {
  let fs: LoopFs;
  let f: Ferryd;
  before(async () => {
    fs = await makeLoopFs('btrfs', 256);
    const dir = await mkdtemp(join(tmpdir(), 'ferry-usage-btrfs-'));
    await writeFile(join(dir, 'ferry.yaml'), ['pools:', '  cow:', `    path: ${fs.mountpoint}`].join('\n'));
    f = await startFerryd({ dir, extraArgs: ['--config', join(dir, 'ferry.yaml')] });
  });
  after(async () => {
    const dir = f?.dir;
    await f?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
    await fs?.destroy();
  });

  it('data is measured, snapshot bytes say "not measured" (no qgroups) and have no metric series', async () => {
    const ok = async (...args: string[]) => {
      const r = await f.cli(...args);
      assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await ok('volume', 'create', 'cow-vol', '-o', 'pool=cow');
    await writeFile(join(fs.mountpoint, 'volumes', 'cow-vol', 'data', 'blob'), randomBytes(MiB));
    await ok('snapshot', 'create', 'cow-vol');
    const u = (JSON.parse(await ok('--json', 'volume', 'inspect', 'cow-vol', '--usage')) as { usage: VolumeUsage }).usage;
    assert.ok(u.dataBytes! >= MiB && u.dataBytes! < 2 * MiB, `data ${u.dataBytes}`);
    assert.equal(u.snapshotBytes, null);
    assert.equal(u.snapshots, 1);
    assert.match(u.snapshotNote ?? '', /not measured: btrfs .* qgroups/);
    assert.match(await ok('volume', 'inspect', 'cow-vol'), /Snapshots:\s+1 snapshot\(s\), space not measured: btrfs/);
    const m = (await unixRequest(f.apiSocket, 'GET', '/metrics')).text;
    assert.match(m, /^ferry_volume_data_bytes\{volume="cow-vol",pool="cow"\} \d+$/m);
    assert.doesNotMatch(m, /^ferry_volume_snapshot_bytes\{volume="cow-vol"/m);
  });
});

describe('volume usage follows changes the background pass cannot see by itself', () => {
  let f: Ferryd;
  before(async () => {
    // a pass every 200 ms: a figure that is still wrong after many passes stays wrong
    f = await startFerryd({ env: { FERRY_USAGE_INTERVAL_MS: '200' } });
  });
  after(async () => {
    await f?.destroy();
  });
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** The figure `ferry volume ls` shows (the background pass's; no walk of its own). */
  const listed = async (v: string) => ((JSON.parse(await ok('--json', 'volume', 'ls')) as Array<{ name: string; usage: VolumeUsage }>).find((x) => x.name === v)!.usage.dataBytes ?? -1);
  const settlesAt = async (v: string, mib: number, what: string) => {
    const deadline = Date.now() + 15_000;
    let bytes = await listed(v);
    while (!(bytes >= mib * MiB && bytes <= (mib + 0.5) * MiB)) {
      assert.ok(Date.now() < deadline, `${what}: ${v} still listed with ${bytes} bytes, expected about ${mib} MiB`);
      await new Promise((r) => setTimeout(r, 200));
      bytes = await listed(v);
    }
  };
  const mount = async (v: string, id: string) => assert.equal((await f.plugin('Mount', { Name: v, ID: id })).json.Err, '');
  const unmount = async (v: string, id: string) => assert.equal((await f.plugin('Unmount', { Name: v, ID: id })).json.Err, '');
  const write = (v: string, name: string, mib: number) => writeFile(join(f.dataDir, 'volumes', v, 'data', name), randomBytes(mib * MiB));

  it('a restore in place (the data directory keeps its inode) is measured again', async () => {
    await ok('volume', 'create', 'rs');
    await ok('snapshot', 'create', 'rs', '--name', 'empty');
    await mount('rs', 'c1');
    await write('rs', 'f', 3);
    await unmount('rs', 'c1');
    await settlesAt('rs', 3, 'after the unmount');
    await ok('snapshot', 'restore', 'rs', 'empty');
    await settlesAt('rs', 0, 'after the restore');
  });

  it('a volume mounted across a restart of ferryd is measured again once unmounted', async () => {
    await ok('volume', 'create', 'across');
    await settlesAt('across', 0, 'new');
    await mount('across', 'c2');
    await write('across', 'f', 2);
    await f.stop();
    await f.start();
    await unmount('across', 'c2');
    await settlesAt('across', 2, 'after the unmount');
  });
});
