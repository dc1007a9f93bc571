import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync, rmSync, mkdirSync, appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname, basename } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';

/**
 * Each of ferryd's state files, truncated or filled with garbage while ferryd is stopped: ferryd must
 * start, serve every volume whose data is there (through the plugin socket, as Docker calls it), move the
 * bad file aside with its bytes intact, say so in `ferry status`, and start cleanly once more.
 * The start-up time of each case is printed for the issue's table (FERRY_CORRUPT_TIMES=1 prints them).
 */
const GARBAGE = Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7b, 0x22, 0x0a, 0xde, 0xad, 0xbe, 0xef, 0x0a, 0x6e, 0x6f, 0x20, 0x6a, 0x73, 0x6f, 0x6e]);
const times: Array<[string, number]> = [];

describe('corrupt state files', () => {
  let base: string;
  let f: Ferryd;
  const data = (v: string) => join(f.dataDir, 'volumes', v, 'data');
  const cat = (...p: string[]) => join(f.dataDir, 'catalog', ...p);

  const ok = async (method: string, body: Record<string, unknown>) => {
    const r = await f.plugin(method, body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.Err ?? '', '', `${method} ${JSON.stringify(body)}: ${r.text}`);
    return r.json;
  };
  const cliOk = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const warnings = async (): Promise<Array<{ code: string; file?: string; message: string }>> => JSON.parse(await cliOk('--json', 'status')).warnings;
  /** The startupMs of the newest "ferryd ready" line. */
  const startupMs = async () => {
    const ready = (await f.logs()).split('\n').filter((l) => l.includes('"msg":"ferryd ready"'));
    return JSON.parse(ready.at(-1)!).startupMs as number;
  };
  /** Stop (or crash), damage, start again; record how long the start took. */
  const restartWith = async (label: string, damage: () => void, { crash = false } = {}) => {
    if (crash) await f.crash();
    else await f.stop();
    damage();
    await f.start();
    times.push([label, await startupMs()]);
  };
  /** The one file moved aside for `file`, holding `bytes`. */
  const assertAside = (file: string, bytes: Buffer) => {
    const aside = readdirSync(dirname(file)).filter((e) => e.startsWith(`${basename(file)}.corrupt-`));
    assert.equal(aside.length, 1, `one file moved aside for ${file}: ${aside.join(', ')}`);
    assert.deepEqual(readFileSync(join(dirname(file), aside[0]!)), bytes, 'moved aside with its original bytes');
    return join(dirname(file), aside[0]!);
  };
  const assertWarned = async (file: string, what: RegExp) => {
    const w = (await warnings()).find((x) => x.message.includes(file));
    assert.ok(w, `a warning names ${file}: ${JSON.stringify(await warnings())}`);
    assert.match(w.message, what);
    assert.match(await cliOk("status"), /WARNINGS/);
  };
  /** Another plain restart: no warning, nothing more moved aside. */
  const assertCleanRestart = async (dir: string) => {
    const before = readdirSync(dir).filter((e) => e.includes('.corrupt-')).length;
    await f.stop();
    await f.start();
    assert.deepEqual(await warnings(), []);
    assert.equal(readdirSync(dir).filter((e) => e.includes('.corrupt-')).length, before);
  };
  /** Docker's view: Get, List, Mount, Path and the data behind the mountpoint. */
  const assertServed = async (v: string, file: string, content: string, mountId: string) => {
    const got = await ok('Get', { Name: v });
    assert.equal(got.Volume.Name, v);
    assert.ok((await ok('List', {})).Volumes.some((x: { Name: string }) => x.Name === v));
    const m = await ok('Mount', { Name: v, ID: mountId });
    assert.equal((await ok('Path', { Name: v })).Mountpoint, m.Mountpoint);
    assert.equal(readFileSync(join(m.Mountpoint, file), 'utf8'), content);
    await ok('Unmount', { Name: v, ID: mountId });
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-corrupt-'));
    const share = join(base, 'share');
    mkdirSync(share);
    writeFileSync(join(share, '.ferry-pool'), '');
    writeFileSync(join(base, 'ferry.yaml'), ['heartbeatInterval: 200ms', 'nodeTimeout: 5s', 'pools:', '  nas:', `    path: ${share}`, '    shared: true', ''].join('\n'));
    f = await startFerryd({ dir: join(base, 'node'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
  });
  after(async () => {
    await f?.destroy();
    await rm(base, { recursive: true, force: true });
    if (times.length) console.log(`start-up after each corrupt-state case (ms):\n${times.map(([l, ms]) => `  ${l}: ${ms}`).join('\n')}`);
  });

  it('a volume record: the volume is adopted with its mounts from the journal, and served', async () => {
    await cliOk('volume', 'create', 'recvol', '-o', 'mode=0750');
    writeFileSync(join(data('recvol'), 'file'), 'recvol data');
    await ok('Mount', { Name: 'recvol', ID: 'c0ffee01' }); // in the journal only, until the next compaction
    const file = cat('volumes', 'recvol.json');
    await restartWith('volume record (garbage)', () => writeFileSync(file, GARBAGE), { crash: true });
    await assertServed('recvol', 'file', 'recvol data', 'c0ffee02');
    const v = JSON.parse(await cliOk('volume', 'inspect', 'recvol', '--json'));
    assert.deepEqual(v.mountIds, ['c0ffee01'], 'the mount recorded in the journal is still counted');
    assert.equal(v.labels['ferry.recovered'], 'true');
    assertAside(file, GARBAGE);
    await assertWarned(file, /adopted from its directory in pool local.*1 Docker mount/);
    // a volume that is still mounted is not removed by mistake
    assert.equal((await f.cli('volume', 'rm', 'recvol')).code, 1);
    await assertCleanRestart(cat('volumes'));
    await ok('Unmount', { Name: 'recvol', ID: 'c0ffee01' });
  });

  it('a truncated volume record of a volume in a shared pool: the shared record is used', async () => {
    await cliOk('volume', 'create', 'sharedvol', '-o', 'pool=nas');
    const m = await ok('Mount', { Name: 'sharedvol', ID: '5ead0001' });
    writeFileSync(join(m.Mountpoint, 'file'), 'shared data');
    await f.stop();
    await f.start(); // the journal is compacted into the record
    const file = cat('volumes', 'sharedvol.json');
    const bytes = readFileSync(file).subarray(0, 17);
    await restartWith('volume record (truncated, shared pool)', () => writeFileSync(file, bytes));
    await assertServed('sharedvol', 'file', 'shared data', '5ead0002');
    assertAside(file, bytes);
    await assertWarned(file, /adopted from its directory in pool nas/);
    await assertCleanRestart(cat('volumes'));
  });

  it('the mount journal: garbage lines are skipped and the file moved aside; a torn last line after kill -9 is no harm', async () => {
    await cliOk('volume', 'create', 'jvol');
    writeFileSync(join(data('jvol'), 'file'), 'jvol data');
    await ok('Mount', { Name: 'jvol', ID: 'aaaa0001' });
    await f.crash();
    const logs = readdirSync(cat()).filter((e) => /^mounts\.\d+\.log$/.test(e));
    assert.equal(logs.length, 1);
    const journal = cat(logs[0]!);
    const bytes = Buffer.concat([GARBAGE, Buffer.from('\n'), readFileSync(journal)]);
    writeFileSync(journal, bytes);
    await f.start();
    times.push(['mount journal (garbage lines)', await startupMs()]);
    await assertServed('jvol', 'file', 'jvol data', 'aaaa0002');
    assert.deepEqual(JSON.parse(await cliOk('volume', 'inspect', 'jvol', '--json')).mountIds, ['aaaa0001'], 'the readable entry still counts');
    assertAside(journal, bytes);
    await assertWarned(journal, /3 of 4 lines are not journal entries.*Mount counts are taken from/);

    // kill -9 in the middle of an append leaves the start of an entry without its newline
    await ok('Mount', { Name: 'jvol', ID: 'aaaa0003' });
    await f.crash();
    const now = readdirSync(cat()).filter((e) => /^mounts\.\d+\.log$/.test(e));
    appendFileSync(cat(now[0]!), '{"v":"jvol","c":"2026-12-0');
    await f.start();
    times.push(['mount journal (torn last line after kill -9)', await startupMs()]);
    assert.deepEqual(JSON.parse(await cliOk('volume', 'inspect', 'jvol', '--json')).mountIds.sort(), ['aaaa0001', 'aaaa0003']);
    assert.deepEqual(await warnings(), [], 'a torn last line is what a crash leaves: no warning');
    assert.ok(!readdirSync(cat()).some((e) => e.startsWith(`${now[0]}.corrupt-`)));

    // all garbage
    await f.stop();
    const fresh = cat(readdirSync(cat()).filter((e) => /^mounts\.\d+\.log$/.test(e))[0]!);
    const junk = Buffer.concat([GARBAGE, GARBAGE]);
    await restartWith('mount journal (all garbage)', () => writeFileSync(fresh, junk));
    await assertServed('jvol', 'file', 'jvol data', 'aaaa0004');
    assertAside(fresh, junk);
    await assertWarned(fresh, /lines are not journal entries/);
    await assertCleanRestart(cat());
    for (const id of ['aaaa0001', 'aaaa0003']) await ok('Unmount', { Name: 'jvol', ID: id });
  });

  it('tokens.json: ferryd starts with no tokens', async () => {
    await cliOk('token', 'create', '--role', 'read', '--name', 'scraper');
    const file = join(f.dataDir, 'tokens.json');
    const bytes = readFileSync(file).subarray(0, 40);
    await restartWith('tokens.json (truncated)', () => writeFileSync(file, bytes));
    assert.deepEqual(JSON.parse(await cliOk('--json', 'token', 'ls')), []);
    assertAside(file, bytes);
    await assertWarned(file, /no API tokens/);
    await cliOk('token', 'create', '--role', 'read', '--name', 'again');
    await assertCleanRestart(f.dataDir);
    assert.equal(JSON.parse(await cliOk('--json', 'token', 'ls'))[0].name, 'again');
  });

  it('a trash record: the entry is rebuilt from its name and can be undeleted', async () => {
    await cliOk('volume', 'create', 'tvol');
    writeFileSync(join(data('tvol'), 'file'), 'tvol data');
    await cliOk('volume', 'rm', 'tvol');
    const rec = readdirSync(cat('trash')).find((e) => e.startsWith('tvol@'))!;
    const file = cat('trash', rec);
    await restartWith('trash record (garbage)', () => writeFileSync(file, GARBAGE));
    const trash = JSON.parse(await cliOk('--json', 'trash', 'ls'));
    assert.ok(trash.some((t: { name: string }) => t.name === 'tvol'), JSON.stringify(trash));
    assertAside(file, GARBAGE);
    await assertWarned(file, /rebuilt from its name.*full retention/);
    await assertCleanRestart(cat('trash'));
    await cliOk('volume', 'undelete', 'tvol');
    await assertServed('tvol', 'file', 'tvol data', 'bbbb0001');
  });

  it('a snapshot record: listed again as recovered-ID, and every tree is kept', async () => {
    await cliOk('volume', 'create', 'svol');
    writeFileSync(join(data('svol'), 'a'), 'first');
    const s1 = JSON.parse(await cliOk('--json', 'snapshot', 'create', 'svol', '--name', 's1')).id as string;
    writeFileSync(join(data('svol'), 'b'), 'second');
    await cliOk('snapshot', 'create', 'svol', '--name', 's2');
    const snaps = join(f.dataDir, 'volumes', 'svol', 'snapshots');
    const file = join(snaps, `${s1}.json`);
    await restartWith('snapshot record (garbage)', () => writeFileSync(file, GARBAGE));
    await assertServed('svol', 'b', 'second', 'cccc0001');
    const names = JSON.parse(await cliOk('--json', 'snapshot', 'ls', 'svol')).map((s: { name: string }) => s.name);
    assert.deepEqual(names.sort(), [`recovered-${s1}`, 's2']);
    assertAside(file, GARBAGE);
    await assertWarned(file, new RegExp(`listed again as recovered-${s1}`));
    await assertCleanRestart(snaps);
    // s2 refers to s1's copy of `a`: it restores whole, and so does the recovered s1
    await cliOk('snapshot', 'restore', 'svol', 's2');
    assert.equal(readFileSync(join(data('svol'), 'a'), 'utf8'), 'first');
    assert.equal(readFileSync(join(data('svol'), 'b'), 'utf8'), 'second');
    await cliOk('snapshot', 'restore', 'svol', `recovered-${s1}`);
    assert.deepEqual(readdirSync(data('svol')), ['a']);
  });

  it('a snapshot manifest: that snapshot is refused for restores, the others work, removing it keeps what they need', async () => {
    await cliOk('volume', 'create', 'mvol');
    writeFileSync(join(data('mvol'), 'a'), 'first');
    const s1 = JSON.parse(await cliOk('--json', 'snapshot', 'create', 'mvol', '--name', 's1')).id as string;
    writeFileSync(join(data('mvol'), 'b'), 'second');
    await cliOk('snapshot', 'create', 'mvol', '--name', 's2');
    const snaps = join(f.dataDir, 'volumes', 'mvol', 'snapshots');
    const file = join(snaps, `${s1}.manifest.json`);
    const bytes = readFileSync(file).subarray(0, 30);
    await restartWith('snapshot manifest (truncated)', () => writeFileSync(file, bytes));
    await assertServed('mvol', 'b', 'second', 'dddd0001');
    const refused = await f.cli('snapshot', 'restore', 'mvol', 's1');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /manifest of snapshot .* could not be read and was moved aside/);
    assertAside(file, bytes);
    await assertWarned(file, /cannot be restored, cloned or backed up/);
    await cliOk('snapshot', 'create', 'mvol', '--name', 's3');
    await cliOk('snapshot', 'rm', 'mvol', 's1');
    assertAside(file, bytes); // still there after the snapshot went
    await cliOk('snapshot', 'restore', 'mvol', 's2');
    assert.equal(readFileSync(join(data('mvol'), 'a'), 'utf8'), 'first');
    assert.equal(readFileSync(join(data('mvol'), 'b'), 'utf8'), 'second');
    await assertCleanRestart(snaps);
  });

  it("another node's heartbeat and attachment: warned of, never moved, this node carries on", async () => {
    const share = join(base, 'share');
    const m = await ok('Mount', { Name: 'sharedvol', ID: '5ead0003' });
    const beat = join(share, 'nodes', 'other-node.json');
    const att = join(share, 'attachments', 'sharedvol', 'other-node.json');
    await restartWith('heartbeat and attachment of another node (garbage)', () => {
      writeFileSync(beat, GARBAGE);
      writeFileSync(att, GARBAGE);
    });
    await assertServed('sharedvol', 'file', 'shared data', '5ead0004');
    assert.equal(readFileSync(join(m.Mountpoint, 'file'), 'utf8'), 'shared data');
    const st = JSON.parse(await cliOk('--json', 'status'));
    assert.deepEqual(st.cluster.nodes.map((n: { node: string }) => n.node), ['test-node'], 'the unreadable heartbeat counts as no node');
    await cliOk('volume', 'ls');
    await assertWarned(beat, /taken as missing/);
    await assertWarned(att, /ignored until that node rewrites it/);
    assert.deepEqual(readFileSync(beat), GARBAGE, 'left where it is');
    assert.deepEqual(readFileSync(att), GARBAGE, 'left where it is');
    assert.ok(!readdirSync(dirname(beat)).some((e) => e.includes('.corrupt-')));
    // the other node writes again: the warnings go
    writeFileSync(att, JSON.stringify({ node: 'other-node', volume: 'sharedvol', createdAt: 'x', access: 'rwx', mountIds: [], containers: [], since: 'x', updatedAt: 'x' }));
    writeFileSync(beat, JSON.stringify({ node: 'other-node', pid: 1, version: 'x', startedAt: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z', intervalMs: 200 }));
    await cliOk('--json', 'status');
    assert.deepEqual(await warnings(), []);
    rmSync(att);
    rmSync(beat);
    await ok('Unmount', { Name: 'sharedvol', ID: '5ead0003' });
  });

  it('the backup schedule state and last-backups.json', async () => {
    const sched = join(f.dataDir, 'backup-schedules.json');
    const last = join(f.dataDir, 'last-backups.json');
    await restartWith('backup-schedules.json and last-backups.json (garbage)', () => {
      writeFileSync(sched, GARBAGE);
      writeFileSync(last, GARBAGE);
    });
    await assertServed('recvol', 'file', 'recvol data', 'eeee0001');
    for (let i = 0; i < 100 && !(await warnings()).some((w) => w.message.includes(sched)); i++) await new Promise((r) => setTimeout(r, 50));
    assertAside(sched, GARBAGE);
    assertAside(last, GARBAGE);
    await assertWarned(sched, /next scheduled backup now/);
    await assertWarned(last, /last-backup metrics start empty/);
    await assertCleanRestart(f.dataDir);
  });
});
