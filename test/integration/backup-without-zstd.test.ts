/**
 * A host where npm could not install zstd-napi (an optional dependency: no prebuilt binary, no compiler):
 * Ferry still backs up (with brotli) and restores what it can read, says plainly why it cannot read a
 * zstd backup, and a host with zstd reads the brotli backup byte for byte. The host without zstd is a
 * copy of the built program whose node_modules lacks that one package, run in child processes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { init, runBackup, runRestore, type Repository } from '../../src/backup/index.js';
import { populate } from '../helpers/tree.js';
import { assertSameTree } from '../helpers/backup.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '../..');
const repoRoot = join(dist, '..');
const cheap = { N: 1 << 12, r: 8, p: 1 };
const password = 'correct horse';

describe('a host without the optional zstd package', () => {
  let tmp: string;
  let url: string;
  let repo: Repository;
  let child: string;

  /** backup-child.js of the copy without zstd-napi: its JSON result line, and its exit status. */
  function withoutZstd(...args: string[]): { status: number | null; out: Record<string, unknown> } {
    const r = spawnSync(process.execPath, [child, ...args], { encoding: 'utf8' });
    const last = r.stdout.trim().split('\n').at(-1) ?? '';
    assert.ok(last.startsWith('{'), `backup-child ${args[0]} printed no result: ${r.stdout} ${r.stderr}`);
    return { status: r.status, out: JSON.parse(last) as Record<string, unknown> };
  }

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'ferry-nozstd-'));
    // the copy: the built program, and every installed package but zstd-napi
    const app = join(tmp, 'app');
    cpSync(join(dist, 'src'), join(app, 'dist/src'), { recursive: true, filter: (s) => !s.endsWith('.map') });
    cpSync(join(dist, 'test/helpers/backup-child.js'), join(app, 'dist/test/helpers/backup-child.js'));
    writeFileSync(join(app, 'package.json'), '{ "type": "module" }\n');
    mkdirSync(join(app, 'node_modules'));
    for (const name of readdirSync(join(repoRoot, 'node_modules'))) {
      if (name !== 'zstd-napi' && name !== '.bin') symlinkSync(join(repoRoot, 'node_modules', name), join(app, 'node_modules', name));
    }
    child = join(app, 'dist/test/helpers/backup-child.js');
    url = pathToFileURL(join(tmp, 'repo')).href;
    repo = await init(url, { password, kdf: cheap });
  });
  after(() => {
    repo?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('backs up with brotli, restores it, and cannot read zstd backups, saying why; a host with zstd reads its backup byte for byte', async () => {
    assert.deepEqual(withoutZstd('codec').out, { format: 1 }, 'the copy compresses with brotli (format byte 1)');
    const withZstd = spawnSync(process.execPath, [join(dist, 'test/helpers/backup-child.js'), 'codec'], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(withZstd.stdout), { format: 2 }, 'the real build compresses with zstd (format byte 2)');

    // a backup made here, with zstd
    const zsrc = join(tmp, 'zstd-src');
    mkdirSync(zsrc);
    populate(zsrc, 60);
    const zinfo = await runBackup(repo, zsrc, { volume: 'here' });

    // a backup made on the host without zstd, of other data (no chunk in common: populate()'s sparse
    // file and hard-linked text would be, and the chunk the other backup stored is zstd)
    const bsrc = join(tmp, 'brotli-src');
    mkdirSync(join(bsrc, 'logs/old'), { recursive: true });
    writeFileSync(join(bsrc, 'logs/app.log'), 'a log line that compresses well\n'.repeat(100_000));
    writeFileSync(join(bsrc, 'logs/old/app.log.1'), Array.from({ length: 20_000 }, (_, i) => `request ${i} took ${i % 97} ms\n`).join(''));
    writeFileSync(join(bsrc, 'random.bin'), randomBytes(3 << 20));
    for (let i = 0; i < 40; i++) writeFileSync(join(bsrc, `small-${i}.txt`), `note ${i}: ${randomBytes(8).toString('hex')}\n`.repeat(1 + i));
    symlinkSync('logs/app.log', join(bsrc, 'current.log'));
    const made = withoutZstd('backup', url, password, bsrc, 'there');
    assert.equal(made.status, 0, JSON.stringify(made.out));
    const bid = made.out.id as string;

    // that host restores its own backup
    const out1 = join(tmp, 'out-there');
    const r1 = withoutZstd('restore', url, password, bid, out1);
    assert.equal(r1.status, 0, JSON.stringify(r1.out));
    assertSameTree(bsrc, out1);

    // a backup with zstd chunks: a clear error that names the cause and the remedy, not "corrupt"
    const r2 = withoutZstd('restore', url, password, zinfo.id, join(tmp, 'out-zstd-there'));
    assert.equal(r2.status, 1);
    assert.equal(r2.out.error, 'unavailable', JSON.stringify(r2.out));
    assert.match(r2.out.message as string, /zstd is not available on this host .*zstd-napi.*install g\+\+, make and python3 .*nodedir.* and run npm ci again/);
    const v = withoutZstd('verify', url, password);
    assert.equal(v.status, 1, 'verify stops rather than calling zstd chunks damaged');
    assert.equal(v.out.error, 'unavailable');

    // this host reads both
    const out3 = join(tmp, 'out-here');
    await runRestore(repo, bid, out3);
    assertSameTree(bsrc, out3);
    const out4 = join(tmp, 'out-zstd-here');
    await runRestore(repo, zinfo.id, out4);
    assertSameTree(zsrc, out4);
  });
});
