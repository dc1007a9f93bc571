/**
 * What a person reads from the CLI against a real ferryd: backup and restore progress under a
 * pseudo-terminal of 80 and 120 columns and piped (no terminal), and tables that fit 100 columns.
 * A backup of a volume with 96 MiB of random data and 200 small files to a file:// target gives real progress.
 * How many live frames a run shows depends on the machine's speed: every frame seen is checked, and the
 * frames that are always there (the first, the final line) are asserted exactly.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, type Ferryd } from '../helpers/ferryd.js';
import { ferryInPty, frames } from '../helpers/pty.js';

const MiB = 1024 * 1024;

/** What no person should ever read on a progress line. */
function assertReadable(line: string): void {
  assert.doesNotMatch(line, /NaN|Infinity|undefined|null|\bNF|ETA NF/, line);
  assert.doesNotMatch(line, /\b\d{4,} B\b/, `raw bytes: ${line}`);
}

describe('CLI progress and tables against a real ferryd', () => {
  let base: string;
  let f: Ferryd;
  let target: string;
  const vol = 'progress-data';
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-cli-progress-'));
    await writeFile(join(base, 'key'), 'correct horse battery staple\n', { mode: 0o600 });
    await writeFile(join(base, 'ferry.yaml'), `backupPasswordFile: ${join(base, 'key')}\n`);
    for (const r of ['repo', 'repo120']) await mkdir(join(base, r));
    target = `file://${join(base, 'repo')}`;
    f = await startFerryd({ dir: join(base, 'ferryd'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
    await ok('volume', 'create', vol);
    const data = join(f.dataDir, 'volumes', vol, 'data');
    for (let i = 0; i < 6; i++) await writeFile(join(data, `big-${i}.bin`), randomBytes(16 * MiB));
    await mkdir(join(data, 'small'));
    for (let i = 0; i < 200; i++) await writeFile(join(data, 'small', `f-${i}.txt`), randomBytes(1000 + i * 37));
    await ok('backup', 'init', '--target', target);
    await ok('backup', 'init', '--target', `${target}120`);
  });
  after(async () => {
    await f?.destroy();
    if (base) await rm(base, { recursive: true, force: true });
  });

  const urls: string[] = [];

  for (const cols of [80, 120]) {
    it(`backup create on a terminal of ${cols} columns: one live line that fits, then what happened and the URL`, async (t) => {
      // each a full backup (the 120-column one to a second repository): an incremental one reads nothing
      const r = await ferryInPty(['backup', 'create', vol, '--target', cols === 80 ? target : `${target}120`], cols, f.env);
      assert.equal(r.code, 0, r.raw);
      const seen = frames(r.raw);
      t.diagnostic(`${cols} columns:\n${seen.join('\n')}`);
      const url = seen.at(-1)!;
      const final = seen.at(-2)!;
      const live = seen.slice(0, -2);
      assert.match(url, /^file:\/\/\S+\?backup=[0-9a-f]{32}&volume=progress-data$/);
      if (cols === 80) urls.push(url);
      assert.match(final, /^backed up progress-data: 206 files, 9[67] MiB in \d+(\.\d)?s \(\d+(\.\d)? [KMG]iB\/s\); new data 9[67] MiB, 9[67] MiB written to the target$/, 'random data: all of it new');
      assert.equal(live[0], 'backup progress-data  snapshot', 'the job is answered in its snapshot phase');
      const phases = ['snapshot', 'scan', 'upload', 'finish'];
      let last = 0;
      for (const line of live) {
        assert.ok(line.length <= cols - 1, `${line.length} columns > ${cols - 1}: ${line}`);
        assertReadable(line);
        assert.doesNotMatch(line, /100%|\[#+\]/, `never full while running: ${line}`);
        const phase = phases.findIndex((p) => new RegExp(`(^|  )${p}(  |$)`).test(line));
        assert.ok(phase >= last, `phases in order: ${line}`);
        last = phase;
        if (phase === 1) assert.doesNotMatch(line, / of |%|ETA|\d+\/\d+ files/, `no total while the walk goes on: ${line}`);
        if (phase === 2) {
          assert.match(line, /upload {2}(\[#*-+\] {2})?\d{1,2}% {2}\d+(\.\d)? of 9[67] MiB {2}\d+\/206 files/, line);
          if (cols >= 120) assert.match(line, /^backup progress-data {2}upload/, `at ${cols} columns the job is named: ${line}`);
          else assert.match(line, /^upload/, `at 80 columns the phase comes first: ${line}`);
        }
      }
      assert.doesNotMatch(r.raw, /\n.*\n.*\r/, 'the live line is redrawn in place, not on new lines');
    });
  }

  it('backup create piped (no terminal): a line per phase, none twice, no terminal codes; stdout has only the URL', async () => {
    const r = await ok('backup', 'create', vol, '--target', target);
    assert.match(r.stdout, /^file:\/\/\S+\?backup=[0-9a-f]{32}&volume=progress-data\n$/);
    assert.doesNotMatch(r.stderr, /\r|\x1b/);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(new Set(lines).size, lines.length, `no line twice:\n${r.stderr}`);
    assert.equal(lines[0], 'backup progress-data: snapshot');
    assert.match(lines.at(-1)!, /^backed up progress-data: 206 files, 9[67] MiB in \d/);
    // a phase comes back only after 10 s in it; this run is an incremental one of well under that
    const phases = lines.slice(0, -1).map((l) => l.split(': ')[1]!.split(',')[0]!);
    for (let i = 1; i < phases.length; i++) assert.notEqual(phases[i], phases[i - 1], `one line per phase change:\n${r.stderr}`);
    for (const l of lines.slice(0, -1)) assertReadable(l);
  });

  it('backup restore on a terminal of 80 columns: the restore phase, then what was restored; stdout the new volume', async () => {
    const r = await ferryInPty(['backup', 'restore', urls[0]!, 'progress-copy'], 80, f.env);
    assert.equal(r.code, 0, r.raw);
    const seen = frames(r.raw);
    assert.equal(seen[0], 'restore progress-copy  restore');
    assert.match(seen.at(-2)!, /^restored progress-copy: 206 files, 9[67] MiB in \d+(\.\d)?s$/);
    assert.equal(seen.at(-1), 'progress-copy');
    for (const line of seen.slice(0, -2)) {
      assert.ok(line.length <= 79, line);
      assertReadable(line);
    }
  });

  it('tables fit 100 columns with long values shortened, never a name; --json and -q keep everything whole', async () => {
    const stem = `a-volume-with-a-rather-long-name-that-a-compose-project-made-up-from-its-directory-and-service-${'x'.repeat(10)}`;
    // two names that differ only at their end: cut to fit, both would read the same
    const [long, twin] = [`${stem}-1`, `${stem}-2`];
    await ok('volume', 'create', long);
    await ok('volume', 'create', twin);
    const snap = `before-the-upgrade-to-the-next-major-version-of-the-database-server-${'y'.repeat(30)}`;
    await ok('snapshot', 'create', long, '--name', snap);
    const fits = (text: string) => {
      for (const l of text.trimEnd().split('\n')) assert.ok(l.length <= 100, `${l.length}: ${l}`);
    };

    // a table with a long name is as wide as the name needs (so are all its lines: the column is padded)
    const vls = (await ok('volume', 'ls')).stdout;
    assert.match(vls, new RegExp(`^${long} {3}local {3}rwx`, 'm'));
    assert.match(vls, new RegExp(`^${twin} {3}local {3}rwx`, 'm'));
    assert.doesNotMatch(vls, /…/, 'nothing in this table is cut');
    assert.ok((JSON.parse((await ok('--json', 'volume', 'ls')).stdout) as Array<{ name: string }>).some((v) => v.name === long));

    const sls = await ok('snapshot', 'ls', long);
    assert.match(sls.stdout, new RegExp(`^[0-9a-f]+ {3}${snap} {3}snapshot {3}`, 'm'));

    const bls = await ok('backup', 'ls', '--target', target);
    fits(bls.stdout);
    assert.match(bls.stdout, /^ID {3,}VOLUME {3,}NODE {3,}TIME {3,}FILES {3,}SIZE {3,}ADDED {3,}URL$/m);
    assert.match(bls.stdout, /^[0-9a-f]{12} {3}progress-data {3}test-node {3}.* {3}206 {3,}9[67] MiB {3,}.*file:\/\/\S*…$/m);
    const q = (await ok('backup', 'ls', '--target', target, '-q')).stdout.trim().split('\n');
    assert.deepEqual(q.filter((u) => urls.includes(u)).sort(), [...urls].sort(), 'the full URLs with -q');

    const jls = (await ok('job', 'ls')).stdout;
    assert.match(jls, /^[0-9a-f]{12} {3}backup {3,}progress-data {3,}file:\/\/\S+ {3,}succeeded {3}100% of 9[67] MiB {3}/m);
    assert.match(jls, /^[0-9a-f]{12} {3}restore {3,}progress-copy {3,}file:\/\/\S+ {3,}succeeded {3}100% of 9[67] MiB {3}/m);
    assert.match(jls, new RegExp(`^[0-9a-f]{12} {3}snapshot {3}${long} {3}- {3,}succeeded {3}`, 'm'), 'snapshots are jobs too');

    await ok('volume', 'rm', long);
    await ok('volume', 'rm', twin);
    const tls = (await ok('trash', 'ls')).stdout;
    assert.match(tls, new RegExp(`^${long}\\S* {3}${long} {3}local {3}`, 'm'));
    assert.match(tls, new RegExp(`^${twin}\\S* {3}${twin} {3}local {3}`, 'm'));
  });

  it('snapshot ls hides the snapshots ferry made for backups and history unless --all', async () => {
    await ok('snapshot', 'create', vol, '--name', 'mine');
    await ok('commit', vol, '-m', 'a commit');
    const plain = await ok('snapshot', 'ls', vol);
    assert.match(plain.stdout, /^[0-9a-f]+ {3}mine {3,}snapshot {3,}/m);
    assert.doesNotMatch(plain.stdout, /backup-|commit-/);
    assert.match(plain.stderr, /^\(2 made by ferry for backups and history not shown; --all lists them\)$/m);
    const all = await ok('snapshot', 'ls', vol, '--all');
    assert.match(all.stdout, /^[0-9a-f]+ {3}backup-\S+ {3,}backup base {3}/m);
    assert.match(all.stdout, /^[0-9a-f]+ {3}commit-\S+ {3,}commit {3,}/m);
    assert.equal(all.stderr, '');
    const json = JSON.parse((await ok('--json', 'snapshot', 'ls', vol)).stdout) as Array<{ origin: string }>;
    assert.deepEqual(json.map((s) => s.origin).sort(), ['backup', 'history', 'manual'], '--json lists them all, as the API does');
  });
});
