import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync, readFileSync, mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { FERRY_BIN, run, runFerry, startFerryd, type Ferryd } from '../helpers/ferryd.js';

describe('ferry CLI against a real ferryd', () => {
  let f: Ferryd;
  before(async () => {
    f = await startFerryd({ extraArgs: ['--trash-retention', '24h'] });
  });
  after(async () => {
    await f?.destroy();
  });

  it('creates, lists and inspects volumes, as tables and as JSON', async () => {
    const c = await f.cli('volume', 'create', 'web-data', '-o', 'mode=0700', '-o', 'uid=33', '--label', 'app=web');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'web-data\n');
    const ls = await f.cli('volume', 'ls');
    assert.match(ls.stdout, /^NAME\s+POOL\s+ACCESS\s+MOUNTS\s+ATTACHED\s+DATA\s+SNAPSHOTS\s+CREATED\n/);
    assert.match(ls.stdout, /^web-data\s+local\s+rwx\s+0\s+-\s+/m);
    const q = await f.cli('volume', 'ls', '-q');
    assert.equal(q.stdout, 'web-data\n');
    const j = JSON.parse((await f.cli('--json', 'volume', 'ls')).stdout);
    assert.equal(j[0].name, 'web-data');
    const i = await f.cli('volume', 'inspect', 'web-data', '--usage');
    assert.match(i.stdout, /Mountpoint:\s+\S+\/volumes\/web-data\/data/);
    assert.match(i.stdout, /Options:\s+mode=0700 uid=33/);
    assert.match(i.stdout, /Labels:\s+app=web/);
    assert.match(i.stdout, /Data:\s+\d+(\.\d)? KiB \(measured just now\)\nSnapshots:\s+0 B held only by its 0 snapshot\(s\)\nTrash:\s+0 B\nTotal:\s+\d/);
    const ij = JSON.parse((await f.cli('volume', 'inspect', 'web-data', '--json')).stdout);
    assert.deepEqual(ij.labels, { app: 'web' });
    assert.equal(ij.options.uid, 33);
    assert.equal(ij.mounts, 0);
  });

  it('ends quietly when its reader closes the pipe (`ferry volume ls -q | head -1`)', async () => {
    assert.equal((await f.cli('volume', 'create', 'pipe-vol')).code, 0);
    // `true` exits at once: every write of ferry's finds the pipe closed, which Node reports as EPIPE
    const r = await run('bash', ['-o', 'pipefail', '-c', `FERRY_API_SOCKET="${f.apiSocket}" "${process.execPath}" "${FERRY_BIN}" volume ls -q | true`]);
    assert.equal(r.stderr, '', 'no stack trace');
    assert.equal(r.code, 0);
    assert.equal((await f.cli('volume', 'rm', '--purge', 'pipe-vol')).code, 0);
  });

  it('fails with exit code 1 and a clear message on stderr; 2 for a malformed flag', async () => {
    const bad = await f.cli('volume', 'create', '../../etc');
    assert.equal(bad.code, 1, 'a refused name exits 1 with the code the API gives it');
    assert.match(bad.stderr, /^ferry: invalid volume name "\.\.\/\.\.\/etc"/);
    assert.equal(bad.stdout, '');
    const none = await f.cli('--json', 'volume', 'create', '');
    assert.equal(none.code, 1);
    assert.deepEqual(JSON.parse(none.stderr), { error: { code: 'invalid', message: 'volume name is missing; give a name such as "db-data"' } });
    const opt = await f.cli('volume', 'create', 'x1', '-o', 'color=blue');
    assert.equal(opt.code, 1);
    assert.match(opt.stderr, /unknown volume option "color"; accepted options: access, backup, backup-keep, backup-keep-base, backup-schedule, backup-target, from, fs, gid, mode, pool, size, snapshot-keep, snapshot-schedule, uid/);
    const kv = await f.cli('volume', 'create', 'x1', '-o', 'mode');
    assert.equal(kv.code, 2);
    assert.match(kv.stderr, /must be written key=value/);
    const dup = await f.cli('volume', 'create', 'web-data');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    const nf = await f.cli('volume', 'inspect', 'nope');
    assert.equal(nf.code, 1);
    assert.match(nf.stderr, /no such volume: nope/);
    const usage = await f.cli('volume', 'create');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing required argument 'name'/);
    const down = await runFerry(['volume', 'ls'], { FERRY_API_SOCKET: join(f.dir, 'nothing.sock') });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach ferryd at .*nothing\.sock \(no socket there\); is it running\?/);
    const flag = await runFerry(['--api-socket', f.apiSocket, 'volume', 'ls', '-q']);
    assert.equal(flag.code, 0);
    // with --json a command that goes on past one name's failure tells it in JSON too
    assert.equal((await f.cli('volume', 'create', 'json-rm')).code, 0);
    const some = await f.cli('--json', 'volume', 'rm', 'json-rm', 'nosuchvol');
    assert.equal(some.code, 1);
    assert.equal(JSON.parse(some.stdout)[0].removed, 'json-rm');
    assert.deepEqual(JSON.parse(some.stderr), { error: { code: 'not_found', message: 'no such volume: nosuchvol' } });
    const tok = await f.cli('--json', 'token', 'rm', 'nosuchtoken');
    assert.equal(tok.code, 1);
    assert.equal(JSON.parse(tok.stderr).error.code, 'not_found');
  });

  it('removes to the trash, undeletes with the data, purges for good', async () => {
    await f.cli('volume', 'create', 'keep');
    const dataFile = join(f.dataDir, 'volumes', 'keep', 'data', 'important.txt');
    writeFileSync(dataFile, 'precious');
    const rm = await f.cli('volume', 'rm', 'keep');
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, /keep \(in the trash until .*ferry volume undelete keep/);
    assert.ok(!existsSync(dataFile));
    const ls = await f.cli('trash', 'ls');
    assert.match(ls.stdout, /^keep@\d+\s+keep\s+local\s+(just now|\d+ seconds? ago)\s+in 24 hours\s+(-|\d+(\.\d)? KiB)$/m);
    assert.match((await f.cli('volume', 'inspect', 'keep')).stderr, /in the trash; `ferry volume undelete keep` brings it back/);
    const un = await f.cli('volume', 'undelete', 'keep');
    assert.equal(un.code, 0, un.stderr);
    assert.equal(readFileSync(dataFile, 'utf8'), 'precious');
    // the name is taken again: undelete --as
    await f.cli('volume', 'rm', 'keep');
    await f.cli('volume', 'create', 'keep');
    const clash = await f.cli('volume', 'undelete', 'keep');
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /exists again; undelete under another name with --as/);
    assert.equal((await f.cli('volume', 'undelete', 'keep', '--as', 'keep-old')).code, 0);
    assert.equal(readFileSync(join(f.dataDir, 'volumes', 'keep-old', 'data', 'important.txt'), 'utf8'), 'precious');
    // --purge deletes at once, nothing in the trash
    const p = await f.cli('volume', 'rm', '--purge', 'keep-old');
    assert.match(p.stdout, /keep-old \(purged\)/);
    assert.ok(!existsSync(join(f.dataDir, 'volumes', 'keep-old')));
    assert.ok(!JSON.parse((await f.cli('trash', 'ls', '--json')).stdout).some((t: { name: string }) => t.name === 'keep-old'));
    // trash purge
    await f.cli('volume', 'rm', 'keep');
    const nothing = await f.cli('trash', 'purge');
    assert.match(nothing.stderr, /^error: name the entries to purge, or pass --all/);
    assert.equal(nothing.code, 2, 'wrong usage');
    const both = await f.cli('--json', 'trash', 'purge', '--all', 'keep');
    assert.equal(both.code, 2);
    assert.deepEqual(JSON.parse(both.stderr), { error: { code: 'usage', message: 'give entries or --all, not both' } });
    const pu = await f.cli('trash', 'purge', 'keep');
    assert.match(pu.stdout, /^purged keep@\d+$/m);
    assert.equal((await f.cli('volume', 'undelete', 'keep')).code, 1);
    // the trash is empty of keep: no hint of it any more
    const gone = (await f.cli('volume', 'inspect', 'keep')).stderr;
    assert.match(gone, /no such volume: keep/);
    assert.doesNotMatch(gone, /trash/);
    await f.cli('volume', 'create', 'z1');
    await f.cli('volume', 'rm', 'z1');
    assert.equal((await f.cli('trash', 'purge', '--all')).code, 0);
    assert.deepEqual(JSON.parse((await f.cli('trash', 'ls', '--json')).stdout), []);
    assert.deepEqual(readdirSync(join(f.dataDir, 'trash')), [], 'no data left in the trash directory');
  });

  it('refuses to remove a mounted volume unless --force, and says who holds it', async () => {
    await f.cli('volume', 'create', 'busy');
    await f.plugin('Mount', { Name: 'busy', ID: 'abcdef0123456789' });
    const r = await f.cli('volume', 'rm', 'busy');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /volume busy is in use by 1 Docker mount\(s\) abcdef012345/);
    assert.equal((await f.cli('volume', 'rm', '--force', 'busy')).code, 0);
  });

  it('shows status: daemon, node, pools and counts', async () => {
    const s = await f.cli('status');
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^ferryd \d+\.\d+\.\d+ on node test-node/);
    assert.match(s.stdout, /^volumes:\s+\d+ \(0 mounted, 0 mounts\); \d+ in the trash \(kept 24h\)$/m);
    assert.match(s.stdout, /^local\s+dir\s+ok\s+/m);
    // the pools' table fits 80 columns; each pool's path and what enforces sizes follow it, never cut
    const pools = s.stdout.slice(s.stdout.indexOf('\nPOOL ') + 1).split('\n\n')[0]!.split('\n');
    for (const line of pools) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
    assert.match(s.stdout, new RegExp(`^local: ${f.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\S*\\n  sizes: \\S`, 'm'));
    const j = JSON.parse((await f.cli('status', '--json')).stdout);
    assert.equal(j.node, 'test-node');
    assert.equal(j.pools[0].name, 'local');
    assert.ok(j.pools[0].capacity.freeBytes > 0);
  });

  it('has complete help for every command', async () => {
    for (const cmd of [[], ['daemon'], ['volume'], ['volume', 'create'], ['volume', 'ls'], ['volume', 'inspect'], ['volume', 'rm'], ['volume', 'undelete'], ['trash'], ['trash', 'ls'], ['trash', 'purge'], ['status']]) {
      const h = await runFerry([...cmd, '--help']);
      assert.equal(h.code, 0, `${cmd.join(' ')} --help`);
      assert.match(h.stdout, /^Usage: ferry/);
    }
    assert.match((await runFerry(['daemon', '--help'])).stdout, /--data-dir <dir>[\s\S]*--plugin-socket[\s\S]*--node[\s\S]*--trash-retention/);
  });

  it('fits every help text in 80 columns when piped (no terminal width to go by)', async () => {
    // every command and subcommand, found through the help texts themselves
    const queue: string[][] = [[]];
    const seen: string[] = [];
    while (queue.length) {
      const batch = queue.splice(0, 4);
      await Promise.all(
        batch.map(async (cmd) => {
          const h = await runFerry([...cmd, '--help']);
          assert.equal(h.code, 0, `${cmd.join(' ')} --help`);
          seen.push(cmd.join(' '));
          for (const line of h.stdout.split('\n')) assert.ok(line.length <= 80, `ferry ${cmd.join(' ')} --help: ${line.length} columns: ${line}`);
          const commands = h.stdout.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
          for (const m of commands.matchAll(/^ {2}([a-z][a-z-]*)/gm)) if (m[1] !== 'help') queue.push([...cmd, m[1]!]);
        }),
      );
    }
    assert.ok(seen.includes('snapshot restore') && seen.includes('backup create') && seen.length > 30, `walked: ${seen.join(', ')}`);
  });
});

describe('ferryd configuration and trash retention', () => {
  it('reads a YAML config file and refuses unknown or bad settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'));
    try {
      const cfg = join(dir, 'ferry.yaml');
      writeFileSync(cfg, 'dataDir: relative/path\ntrashRetenton: 1h\n');
      const bad = await runFerry(['daemon', '--config', cfg, '--plugin-socket', join(dir, 'p.sock'), '--api-socket', join(dir, 'a.sock')]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /config file .*ferry\.yaml: .*trashRetenton: unknown setting; known: .*trashRetention.*\(line \d+\)/);
      writeFileSync(cfg, 'dataDir: relative/path\n');
      assert.match((await runFerry(['daemon', '--config', cfg])).stderr, /dataDir: must be an absolute path/);
      writeFileSync(cfg, 'trashRetention: soon\n');
      assert.match((await runFerry(['daemon', '--config', cfg])).stderr, /trashRetention "soon" is not a duration/);
      assert.match((await runFerry(['daemon', '--config', join(dir, 'missing.yaml')])).stderr, /cannot read config file/);
      // a good file, overridden by a flag
      writeFileSync(cfg, `dataDir: ${join(dir, 'from-file')}\nnode: from-file\n`);
      const f = await startFerryd({ dir: join(dir, 'd'), extraArgs: ['--config', cfg] });
      try {
        const s = JSON.parse((await f.cli('status', '--json')).stdout);
        assert.equal(s.dataDir, f.dataDir, 'flag beats file');
        assert.equal(s.node, 'test-node');
      } finally {
        await f.destroy();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes a relative --data-dir from the working directory, and calls a bad flag value a usage error (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cwd-'));
    try {
      // the last --data-dir wins over the helper's own
      const f = await startFerryd({ dir, cwd: dir, extraArgs: ['--data-dir', 'rel-data'] });
      try {
        assert.equal(JSON.parse((await f.cli('status', '--json')).stdout).dataDir, join(dir, 'rel-data'));
        assert.ok(existsSync(join(dir, 'rel-data', 'catalog')), 'the data dir made there');
      } finally {
        await f.destroy();
      }
      const bad = await runFerry(['daemon', '--data-dir', join(dir, 'other'), '--trash-retention', '5x']);
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr, 'ferry: --trash-retention "5x" is not a duration; write it like 30s, 90m, 24h, 7d or 1h30m\n(run with --help for usage)\n');
      assert.equal(existsSync(join(dir, 'other')), false, 'nothing made for a command that was refused');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('purges trash entries once their retention has passed', async () => {
    const f = await startFerryd({ extraArgs: ['--trash-retention', '2s'] });
    try {
      await f.cli('volume', 'create', 'short-lived');
      await f.cli('volume', 'rm', 'short-lived');
      assert.equal(JSON.parse((await f.cli('trash', 'ls', '--json')).stdout).length, 1);
      await new Promise((r) => setTimeout(r, 3200));
      assert.deepEqual(JSON.parse((await f.cli('trash', 'ls', '--json')).stdout), []);
      assert.deepEqual(readdirSync(join(f.dataDir, 'trash')), [], 'the data is gone too');
    } finally {
      await f.destroy();
    }
  });
});
