import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { doctor, formatChecks, wrap } from '../../src/cli/doctor.js';
import { ApiClient } from '../../src/cli/client.js';
import { ok, problem, skipped } from '../../src/doctor/check.js';
import { judgeClocks, linkProbe } from '../../src/doctor/share-probes.js';
import { judgeClaim, watchClaim, watchMs } from '../../src/cluster/node-claim.js';
import { lockDataDir, lockState, LOCK_FILE } from '../../src/util/data-dir-lock.js';
import type { NodeBeat } from '../../src/cluster/shared-store.js';

const temp = () => mkdtempSync(join(tmpdir(), 'ferry-doctor-unit-'));

describe('ferry doctor: output', () => {
  const long = '/var/lib/ferry/volumes/' + 'x'.repeat(120);
  const checks = [
    ok('lock', 'ferryd (pid 7) holds the lock of /var/lib/ferry'),
    problem('orphan-dir:local/x', `${long} has no catalog record`, 'restart ferryd to adopt it as a volume (labelled ferry.recovered=true), or move it out of the pool'),
    skipped('docker', 'no Docker engine at unix:///var/run/docker.sock'),
  ];

  it('prints one entry per check, labelled ok / PROBLEM / skipped, every line within 80 columns, the fix after the problem', () => {
    const text = formatChecks(checks);
    const lines = text.split('\n');
    for (const l of lines) assert.ok(l.length <= 80, `${l.length} columns: ${l}`);
    const starts = lines.filter((l) => /^\S/.test(l)).map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(starts, ['ok', 'PROBLEM', 'skipped', '1']);
    assert.match(text, /^PROBLEM  \/var\/lib\/ferry\/volumes\/x+$/m);
    const entry = text.slice(text.indexOf('PROBLEM'), text.indexOf('skipped')).replace(/\n {9}/g, '');
    assert.ok(entry.includes(`${long.slice(0, 71)}`), 'a path longer than a line is cut, never dropped');
    assert.match(entry.replace(/\s+/g, ' '), /has no catalog record\. Fix: restart ferryd to adopt it/);
    assert.match(text, /\n1 problem found\.$/);
  });

  it('sums up a healthy run, counting skipped checks apart', () => {
    assert.match(formatChecks([ok('a', 'fine'), skipped('b', 'not asked')]), /\nAll well: 1 checks passed, 1 skipped\.$/);
  });

  it('wraps at word boundaries with a hanging indent', () => {
    assert.deepEqual(wrap('ok', 'aaa bbb ccc', 16), ['ok       aaa bbb', '         ccc']);
    assert.deepEqual(wrap('ok', 'aaa bbb ccc', 15), ['ok       aaa', '         bbb', '         ccc']);
    assert.deepEqual(wrap('ok', '', 80), ['ok       ']);
  });
});

describe('ferry doctor without a running ferryd', () => {
  it('says ferryd is not running, exits 1, and checks the lock, sockets and pools locally', async () => {
    const dir = temp();
    try {
      const dataDir = join(dir, 'data');
      mkdirSync(join(dataDir, 'volumes'), { recursive: true });
      mkdirSync(join(dataDir, 'trash'));
      const api = new ApiClient(join(dir, 'api.sock'));
      const settings = async () => ({ dataDir, pluginSocket: join(dir, 'plugin.sock'), pools: [{ name: 'local', path: dataDir, shared: false }, { name: 'gone', path: join(dir, 'gone'), shared: false }] });
      const r = await doctor({ api, settings, json: true });
      assert.equal(r.exitCode, 1);
      const byId = new Map(r.checks.map((c) => [c.check, c]));
      assert.equal(byId.get('ferryd')?.state, 'problem');
      assert.match(byId.get('ferryd')!.message, /ferryd is not running: nothing answers on .*api\.sock/);
      assert.equal(byId.get('lock')?.state, 'ok');
      assert.match(byId.get('lock')!.message, /no ferryd has used/);
      assert.equal(byId.get('plugin-socket')?.state, 'ok');
      assert.equal(byId.get('pool:local')?.state, 'ok');
      assert.equal(byId.get('pool:gone')?.state, 'problem');
      assert.match(byId.get('pool:gone')!.message, /pool gone: its directory .*gone does not exist/);
      const json = JSON.parse(r.output);
      assert.equal(json.ok, false);
      assert.equal(json.problems, 2);

      // a process holds the data dir's lock but answers on no socket: named by its pid
      const lock = await lockDataDir(dataDir, { pid: process.pid, node: 'n', host: 'h', startedAt: new Date().toISOString(), version: 't', dataDir, apiSocket: join(dir, 'elsewhere.sock'), pluginSocket: '' });
      try {
        const held = (await doctor({ api, settings })).checks.find((c) => c.check === 'lock')!;
        assert.equal(held.state, 'problem');
        assert.match(held.message, new RegExp(`ferryd pid ${process.pid} holds the lock of ${dataDir} but does not answer here`));
        assert.match(held.fix!, /elsewhere\.sock/);
        assert.equal(lockState(dataDir).holderVerified, true);
        // a second taker is refused, naming the holder; the file still names the holder
        await assert.rejects(lockDataDir(dataDir, { ...JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')), pid: 1 }), new RegExp(`another ferryd \\(pid ${process.pid}\\) is using ${dataDir}`));
        assert.equal(JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')).pid, process.pid);
      } finally {
        lock.release();
      }
      assert.match((await doctor({ api, settings })).checks.find((c) => c.check === 'lock')!.message, /nothing holds the lock/);
      // a socket file nobody serves: Docker would stall on it
      writeFileSync(join(dir, 'plugin.sock'), '');
      assert.match((await doctor({ api, settings })).checks.find((c) => c.check === 'plugin-socket')!.message, /exists and is not a socket/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shared pool probes', () => {
  it('judges clocks: within a second is ok, more is a problem naming the offsets', () => {
    assert.equal(judgeClocks('nas', [{ node: 'a', offsetMs: 3 }, { node: 'b', offsetMs: -400 }]).state, 'ok');
    const bad = judgeClocks('nas', [{ node: 'a', offsetMs: 3 }, { node: 'b', offsetMs: 2500 }]);
    assert.equal(bad.state, 'problem');
    assert.match(bad.message, /node clocks differ by 2\.5 s .*b \+2\.50 s/);
    assert.match(bad.fix!, /NTP/);
  });

  it('finds link(2) atomic on a local filesystem and leaves nothing behind', async () => {
    const dir = temp();
    try {
      const c = await linkProbe('p', dir, 'n1');
      assert.equal(c.state, 'ok', c.message);
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('one ferryd per node name: judging a heartbeat found at start', () => {
  const me = { node: 'n', instance: 'mine', dataDir: '/d', machine: 'boot/mnt:[1]' };
  const beat = (b: Partial<NodeBeat>): NodeBeat => ({ node: 'n', pid: 9, version: 'v', startedAt: '2026-01-01T00:00:00.000Z', lastSeen: new Date(1_000_000).toISOString(), intervalMs: 200, instance: 'other', ...b });
  const now = 1_000_500;

  it('is free without a beat, with our own, after a clean stop, from our own data dir on this kernel, or when stale', () => {
    assert.equal(judgeClaim(undefined, me, now, 1500, true).free, true);
    assert.equal(judgeClaim(beat({ instance: 'mine' }), me, now, 1500, true).free, true);
    assert.equal(judgeClaim(beat({ stoppedAt: new Date(now).toISOString() }), me, now, 1500, true).free, true);
    assert.equal(judgeClaim(beat({ dataDir: '/d', machine: 'boot/mnt:[1]' }), me, now, 1500, true).free, true);
    assert.equal(judgeClaim(beat({ lastSeen: new Date(now - 2000).toISOString() }), me, now, 1500, true).free, true);
  });

  it('watches a fresh beat of another instance (other data dir, other kernel, or no lock held)', () => {
    assert.equal(judgeClaim(beat({}), me, now, 1500, true).free, false);
    assert.equal(judgeClaim(beat({ dataDir: '/d', machine: 'other-boot' }), me, now, 1500, true).free, false);
    assert.equal(judgeClaim(beat({ dataDir: '/d', machine: 'boot/mnt:[1]' }), me, now, 1500, false).free, false);
    assert.equal(judgeClaim(beat({ lastSeen: 'garbage' }), me, now, 1500, true).free, true, 'an unreadable time is no claim');
  });

  it('refuses as soon as the beat is renewed, naming pid, host, data dir and since when; takes over a beat never renewed', async () => {
    const first = beat({ host: 'hostB', dataDir: '/srv/b' });
    const seq = [first, first, { ...first, lastSeen: new Date(now + 200).toISOString() }];
    let i = 0;
    await assert.rejects(
      watchClaim(async () => seq[Math.min(i++, seq.length - 1)], first, 'nas', 200, async () => undefined),
      /another ferryd \(pid 9, on host hostB, data dir \/srv\/b\) is node n in shared pool nas, alive since 2026-01-01T00:00:00\.000Z/,
    );
    let slept = 0;
    const why = await watchClaim(async () => first, first, 'nas', 200, async (ms) => void (slept += ms));
    assert.match(why, /was not renewed/);
    assert.equal(Math.round(slept), watchMs(200));
    assert.match(await watchClaim(async () => ({ ...first, stoppedAt: 'x' }), first, 'nas', 200, async () => undefined), /stopped cleanly/);
  });
});
