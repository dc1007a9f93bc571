/**
 * Snapshots as jobs against a real ferryd on a hard-link pool: `POST .../snapshots {"background": true}`
 * answers 202 with a job at once, the job reports its phases and the copy's files and bytes of known
 * totals while it runs, its result is the snapshot, and the snapshot holds the data byte for byte; what
 * would be refused is refused before any job starts. The CLI follows the job: a live line that fits 80
 * columns on a terminal, one line per phase without one, and stdout unchanged.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import { ferryInPty, frames } from '../helpers/pty.js';
import type { Job, Snapshot } from '../../src/wire/types.js';

const KiB = 1024;

/** `dirs` directories of `files` files of `size` random bytes; resolves to their total size. */
async function fill(root: string, dirs: number, files: number, size: number): Promise<number> {
  for (let d = 0; d < dirs; d++) {
    await mkdir(join(root, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: files }, (_, i) => writeFile(join(root, `d${d}`, `f${i}`), randomBytes(size))));
  }
  return dirs * files * size;
}

/** sha256 of every file under `root`, by relative path. */
async function digests(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p.slice(root.length + 1)] = createHash('sha256').update(await readFile(p)).digest('hex');
  }
  return out;
}

describe('snapshots as jobs', () => {
  let base: string;
  let f: Ferryd;
  const api = async <T>(method: string, path: string, body?: unknown) => {
    const r = await unixRequest(f.apiSocket, method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
    return { status: r.status, body: r.json as T };
  };
  const ok = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const data = (v: string) => join(f.dataDir, 'volumes', v, 'data');

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-snapshot-jobs-'));
    f = await startFerryd({ dir: join(base, 'ferryd') });
  });
  after(async () => {
    await f?.destroy();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('answers 202 with a job, reports scan then copy of known totals as it goes, and its result is the snapshot, byte for byte', async () => {
    await ok('volume', 'create', 'big');
    // 20,000 files of 8 KiB: the copy goes in three batches (64 MiB each at most), so progress moves in between
    const total = await fill(data('big'), 20, 1000, 8 * KiB);
    const before = await digests(data('big'));
    const started = await api<Job>('POST', '/v1/volumes/big/snapshots', { name: 'first', background: true });
    assert.equal(started.status, 202);
    assert.equal(started.body.kind, 'snapshot');
    assert.equal(started.body.volume, 'big');
    assert.equal(started.body.state, 'running');

    const seen: Job['progress'][] = [];
    let job = started.body;
    while (job.state === 'running') {
      seen.push({ ...job.progress });
      await new Promise((r) => setTimeout(r, 25));
      job = (await api<Job>('GET', `/v1/jobs/${job.id}`)).body;
    }
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const order = ['snapshot', 'scan', 'copy', 'save'];
    const phases = seen.map((p) => p.phase ?? 'start').filter((p, i, a) => p !== a[i - 1]);
    for (let i = 1; i < phases.length; i++) assert.ok(order.indexOf(phases[i]!) > order.indexOf(phases[i - 1]!), `phases in order: ${phases.join(' → ')}`);
    const copies = seen.filter((p) => p.phase === 'copy');
    assert.ok(copies.length > 0, `the copy phase was seen: ${phases.join(' → ')}`);
    for (const p of copies) {
      assert.equal(p.filesTotal, 20_000, 'the total of files to copy is known in the copy phase');
      assert.equal(p.bytesTotal, total);
      assert.ok(p.filesDone <= p.filesTotal! && p.bytesDone <= p.bytesTotal!, JSON.stringify(p));
    }
    for (let i = 1; i < copies.length; i++) assert.ok(copies[i]!.filesDone >= copies[i - 1]!.filesDone, 'files done never goes back');
    assert.ok(
      copies.some((p) => p.filesDone > 0 && p.filesDone < 20_000),
      `progress was seen between the start and the end of the copy: ${copies.map((p) => p.filesDone).join(', ')}`,
    );

    const snap = job.result as Snapshot;
    assert.equal(snap.name, 'first');
    assert.equal(snap.stats.copied, 20_000);
    assert.equal(snap.stats.copiedBytes, total);
    const listed = (await api<{ snapshots: Snapshot[] }>('GET', '/v1/volumes/big/snapshots')).body.snapshots;
    assert.deepEqual(listed.map((s) => s.id), [snap.id]);
    assert.deepEqual(await digests(join(f.dataDir, 'volumes', 'big', 'snapshots', snap.id)), before, 'the snapshot holds the data as it was');
    assert.equal((await api<{ jobs: Job[] }>('GET', '/v1/jobs')).body.jobs.filter((j) => j.kind === 'snapshot').length, 1, 'the job is listed');
  });

  it('refuses at once, with no job, what a snapshot would refuse: a bad or taken name, no such volume', async () => {
    const jobsBefore = (await api<{ jobs: Job[] }>('GET', '/v1/jobs')).body.jobs.length;
    const bad = await api<{ error: { code: string; message: string } }>('POST', '/v1/volumes/big/snapshots', { name: '../x', background: true });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /snapshot name "\.\.\/x"/);
    const taken = await api<{ error: { code: string; message: string } }>('POST', '/v1/volumes/big/snapshots', { name: 'first', background: true });
    assert.equal(taken.status, 409);
    assert.match(taken.body.error.message, /already has a snapshot named first/);
    const missing = await api<{ error: { code: string } }>('POST', '/v1/volumes/nope/snapshots', { background: true });
    assert.equal(missing.status, 404);
    assert.equal((await api<{ jobs: Job[] }>('GET', '/v1/jobs')).body.jobs.length, jobsBefore, 'no job was started');
  });

  it('ferry snapshot create on a terminal of 80 columns: one live line that fits, then what it made', async (t) => {
    await ok('volume', 'create', 'cli');
    await fill(data('cli'), 6, 1000, 16 * KiB); // 94 MiB: two batches
    const r = await ferryInPty(['snapshot', 'create', 'cli', '--name', 'tty'], 80, f.env);
    assert.equal(r.code, 0, r.raw);
    const seen = frames(r.raw);
    t.diagnostic(seen.join('\n'));
    assert.match(seen.at(-1)!, /^[0-9a-f]{12} tty \(hardlink, \d+ ms\)$/, 'stdout: the snapshot, as before');
    assert.match(seen.at(-2)!, /^snapshot tty of cli in \d+(\.\d)?(ms|s): 6000 files, 6000 copied \(94 MiB\), 0 unchanged$/);
    for (const line of seen.slice(0, -2)) {
      assert.ok(line.length <= 79, `${line.length} > 79: ${line}`);
      assert.doesNotMatch(line, /NaN|Infinity|undefined|null|\b\d{4,} B\b/, line);
      assert.match(line, /(^|  )(snapshot|scan|copy|save)(  |$)/, `a phase on every line: ${line}`);
    }
    assert.doesNotMatch(r.raw, /\n.*\n.*\r/, 'the live line is redrawn in place');
  });

  it('ferry snapshot create piped: a line per phase and what it made on stderr, stdout as before; --json the record', async () => {
    for (let i = 0; i < 500; i++) await writeFile(join(data('cli'), 'd0', `f${i}`), randomBytes(4 * KiB)); // 500 changed
    const r = await ok('snapshot', 'create', 'cli', '--name', 'piped');
    assert.match(r.stdout, /^[0-9a-f]{12} piped \(hardlink, \d+ ms\)\n$/);
    assert.doesNotMatch(r.stderr, /\r|\x1b/);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(new Set(lines).size, lines.length, `no line twice:\n${r.stderr}`);
    assert.equal(lines[0], 'snapshot cli: snapshot');
    assert.match(lines.at(-1)!, /^snapshot piped of cli in \d+(\.\d)?(ms|s): 6000 files, 500 copied \(2\.0 MiB\), 5500 unchanged$/);
    const json = JSON.parse((await ok('--json', 'snapshot', 'create', 'cli', '--name', 'as-json')).stdout) as Snapshot;
    assert.equal(json.name, 'as-json');
    assert.equal(json.stats.copied, 0);
    const noWait = await ok('snapshot', 'create', 'cli', '--no-wait');
    const id = noWait.stdout.trim();
    assert.match(id, /^[0-9a-f]{12}$/);
    const waited = JSON.parse((await ok('--json', 'job', 'wait', id)).stdout) as Job;
    assert.equal(waited.kind, 'snapshot');
    assert.equal(waited.state, 'succeeded');
    assert.equal((waited.result as Snapshot).volume, 'cli');
  });
});
