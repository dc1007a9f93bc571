/**
 * The Volume Hub web UI in a real browser (Debian's Chromium driven by playwright-core) against a real
 * ferryd serving the UI and the API on TCP, with real volumes, snapshots, commits and a file backup target:
 * log in (a wrong token first), find volumes, snapshot from the UI, follow a backup job's progress, read the
 * cluster page, and a read-only token; then the cluster page of two ferryd nodes sharing pools. Screenshots
 * go to docs/screenshots/ (the README shows them). Needs /usr/bin/chromium (`apt-get install chromium`).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { request as httpRequest, createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startFerryd, unixRequest, ROOT, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless } from '../helpers/prereq.js';
import { chromiumMissing, launchChromium, tcpBase } from '../helpers/browser.js';

const SHOTS = join(ROOT, 'docs', 'screenshots');
const skip = skipUnless(chromiumMissing(), 'web UI (Playwright + Chromium)');

describe('Volume Hub web UI in Chromium against a real ferryd', { skip }, () => {
  let base: string;
  let f: Ferryd;
  let url: string;
  let admin: string;
  let reader: string;
  let browser: Browser;
  let page: Page;
  let engine: Server;
  /** A stand-in for the Docker Engine API of this host: one running container references wiki (ferryd asks /containers/json). */
  const startEngine = (socketPath: string) =>
    new Promise<Server>((resolve) => {
      const srv = createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        if (req.url?.startsWith('/containers/json')) {
          const all = [{ Id: 'c0ffee0123456789abcdef', Names: ['/web-frontend'], State: 'running', Mounts: [{ Type: 'volume', Name: 'wiki' }] }];
          const f = /filters=([^&]+)/.exec(req.url)?.[1];
          const want = f ? (JSON.parse(decodeURIComponent(f)) as { volume?: string[] }).volume : undefined;
          return res.end(JSON.stringify(want ? all.filter((c) => c.Mounts.some((m) => want.includes(m.Name))) : all));
        }
        res.statusCode = 404;
        res.end(JSON.stringify({ message: 'no such object' }));
      });
      srv.listen(socketPath, () => resolve(srv));
    });
  const volumes = ['web-data', 'db-main', 'db-replica', 'cache-1', 'cache-2', 'media', 'logs-2026', 'grafana', 'prometheus', 'wiki'];

  const cli = async (...args: string[]) => {
    const r = await f.cli(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const apiGet = async <T>(path: string): Promise<T> => {
    const res = await fetch(new URL(path, url), { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  const cached = randomBytes(300_000);
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-ui-'));
    await writeFile(join(base, 'key'), 'correct horse battery staple\n', { mode: 0o600 });
    await mkdir(join(base, 'repo'));
    await writeFile(join(base, 'wrong-key'), 'not the password\n', { mode: 0o600 });
    // offsite: the same repository with the wrong password (a repository error, not an authentication one)
    await writeFile(join(base, 'ferry.yaml'), ['backupTargets:', '  nas:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'key')}`, '  offsite:', `    url: file://${join(base, 'repo')}`, `    passwordFile: ${join(base, 'wrong-key')}`].join('\n'));
    engine = await startEngine(join(base, 'docker.sock'));
    f = await startFerryd({ dir: join(base, 'host'), dockerHost: `unix://${join(base, 'docker.sock')}`, extraArgs: ['--config', join(base, 'ferry.yaml'), '--api-listen', '127.0.0.1:0'], logLevel: 'info' });
    url = await tcpBase(f);
    admin = (await cli('token', 'create', '--role', 'admin', '--name', 'ui-admin')).trim();
    reader = (await cli('token', 'create', '--role', 'read', '--name', 'ui-reader')).trim();
    await cli('backup', 'init', '--target', 'nas');
    // (web-data's schedule runs on January 1st only: no scheduled snapshot during the test)
    for (const v of volumes) await cli('volume', 'create', v, '--label', `app=${v.split('-')[0]}`, ...(v.startsWith('db') ? ['--label', 'tier=critical'] : []), ...(v === 'web-data' ? ['-o', 'snapshot-schedule=@yearly', '-o', 'snapshot-keep=yearly=3'] : []));
    const mount = async (v: string) => (await apiGet<{ mountpoint: string }>(`/v1/volumes/${v}`)).mountpoint;
    // web-data: a few files, two snapshots, two commits on master and one on a branch (the history graph)
    const web = await mount('web-data');
    await writeFile(join(web, 'index.html'), '<h1>hello</h1>\n');
    await cli('snapshot', 'create', 'web-data', '--name', 'before-upgrade');
    await cli('commit', 'web-data', '-m', 'first page');
    await writeFile(join(web, 'about.html'), '<h1>about</h1>\n');
    await cli('commit', 'web-data', '-m', 'about page');
    await cli('checkout', '-b', 'web-data', 'redesign');
    await writeFile(join(web, 'style.css'), 'body { color: teal }\n');
    await cli('commit', 'web-data', '-m', 'new colours');
    await cli('checkout', 'web-data', 'master');
    await cli('snapshot', 'create', 'web-data', '--name', 'nightly');
    // in use (wiki; web-data is restored below, which a running container would refuse): mounted through the plugin socket as Docker does for a container
    assert.equal((await f.plugin('Mount', { Name: 'wiki', ID: 'c0ffee0123456789abcdef' })).status, 200);
    await apiGet('/v1/volumes/web-data?usage=true'); // its space measured now (else the background pass does)
    // db-main: ~200 MiB of incompressible data, so that its backup runs long enough to watch
    const db = await mount('db-main');
    for (let i = 0; i < 50; i++) await writeFile(join(db, `table-${i}.dat`), randomBytes(4 * 1024 * 1024));
    await writeFile(join(await mount('cache-1'), 'cached.bin'), cached);
    await cli('backup', 'create', 'cache-1', '--target', 'nas');

    await mkdir(SHOTS, { recursive: true });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  });
  after(async () => {
    await browser?.close();
    await f?.destroy();
    engine?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('serves the page and its assets without a token, the API only with one, and nothing on the unix socket', async () => {
    const res = await fetch(new URL('/', url));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    const html = await res.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, html);
    const js = await fetch(new URL(asset, url), { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('cache-control') ?? '', /immutable/);
    assert.equal((await fetch(new URL('/v1/volumes', url))).status, 401);
    for (const evil of ['/assets/..%2f..%2fpackage.json', '/assets/%2e%2e%2findex.html', '/assets/.hidden.js', '/assets/../../package.json']) {
      const r = await fetch(new URL(evil, url));
      assert.ok(r.status === 404 || r.status === 401, `${evil}: ${r.status}`);
      assert.doesNotMatch(await r.text(), /"name": "ferry"/);
    }
    assert.equal((await unixRequest(f.apiSocket, 'GET', '/')).status, 404, 'the UI is served on the unix socket');
    // large JSON answers are gzipped over TCP for clients that ask (browsers), plain for the others (the CLI)
    const addr = new URL(url);
    const raw = (encoding?: string) =>
      new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const req = httpRequest({ host: addr.hostname, port: addr.port, path: '/v1/openapi.json', headers: { authorization: `Bearer ${admin}`, ...(encoding ? { 'accept-encoding': encoding } : {}) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.end();
      });
    const plain = await raw();
    const zipped = await raw('gzip, deflate, br');
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.ok(zipped.body.length < plain.body.length / 3, `${zipped.body.length} vs ${plain.body.length}`);
    assert.deepEqual(JSON.parse(gunzipSync(zipped.body).toString('utf8')), JSON.parse(plain.body.toString('utf8')));
  });

  it('logs in: a wrong token shows the 401 message, the right one shows the volumes', async () => {
    await page.goto(url + '/');
    await page.getByLabel('Token').waitFor();
    await shot('login');
    await page.getByLabel('Token').fill('ferry_not-a-real-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /the bearer token is not valid/);
    await page.getByLabel('Token').fill(admin);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByTestId('volumes-page').waitFor();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=volume-row]').length === n, volumes.length);
    assert.equal(await page.getByTestId('volume-row').count(), volumes.length);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ferry.token')?.slice(0, 6)), 'ferry_');
    assert.match((await page.getByTestId('volume-count').textContent()) ?? '', /10 of 10 volumes/);
    // cache-1 was backed up: its last backup is known, the others say never
    const cacheRow = page.getByTestId('volume-row').filter({ hasText: 'cache-1' });
    assert.match((await cacheRow.textContent()) ?? '', /just now/);
    await shot('volumes');
  });

  it('answers a repository that refuses its password with 424 bad_password, never 401', async () => {
    const res = await fetch(new URL('/v1/backups?target=offsite&volume=cache-1', url), { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(res.status, 424);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'bad_password');
    assert.match(body.error.message, /wrong password/);
    assert.equal(res.headers.get('www-authenticate'), null);
  });

  it('shows an in-use volume with its containers by name and state, and a wrong-password target inline, staying logged in', async () => {
    const errors: string[] = [];
    const onError = (e: Error) => errors.push(e.message);
    page.on('pageerror', onError);
    try {
      await page.goto(url + '/#/volumes/wiki');
      const c = page.getByTestId('container');
      await c.first().waitFor();
      const text = (await c.first().textContent()) ?? '';
      assert.match(text, /web-frontend/);
      assert.match(text, /running/);
      const inline = page.getByTestId('target-error');
      await inline.waitFor();
      assert.match((await inline.textContent()) ?? '', /target offsite: .*wrong password/);
      // the rest of the page works: the nas target lists its backups section, snapshots show, the token is kept
      assert.ok((await page.getByTestId('backups').count()) >= 2);
      await page.getByRole('button', { name: 'Snapshot now' }).waitFor();
      assert.equal(await page.getByLabel('Token').count(), 0, 'sent back to the login screen');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('ferry.token')?.slice(0, 6)), 'ferry_');
      await shot('volume-in-use');
      assert.deepEqual(errors, []);
    } finally {
      page.off('pageerror', onError);
      // back where the next tests start: the volumes list
      await page.goto(url + '/#/volumes');
      await page.getByTestId('volumes-page').waitFor();
    }
  });

  it('lists who uses each volume by container name, and when it was last snapshotted', async () => {
    const row = (name: string) => page.getByTestId('volume-row').filter({ has: page.getByRole('link', { name, exact: true }) });
    await row('wiki').waitFor();
    assert.equal(await row('wiki').getByTestId('volume-users').textContent(), 'web-frontend');
    assert.match((await row('web-data').getByTestId('volume-last-snapshot').textContent()) ?? '', /^(just now|\d+ (seconds?|min) ago)$/);
    assert.equal(await row('media').getByTestId('volume-last-snapshot').textContent(), 'none');
  });

  it('searches, filters by label, sorts', async () => {
    await page.getByLabel('Search volumes').fill('db');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=volume-row]').length === 2);
    assert.deepEqual(await page.getByTestId('volume-row').locator('td:first-child').allTextContents(), ['db-main', 'db-replica']);
    await page.getByLabel('Search volumes').fill('');
    await page.getByLabel('Label').selectOption('tier=critical');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=volume-row]').length === 2);
    await page.getByLabel('Label').selectOption('');
    await page.getByRole('button', { name: /^Name/ }).click(); // descending
    await page.waitForFunction(() => document.querySelector('[data-testid=volume-row] td')?.textContent === 'wiki');
  });

  it('opens a volume, shows its snapshots and history, and makes a snapshot from the UI', async () => {
    await page.getByRole('link', { name: 'web-data' }).click();
    await page.getByTestId('volume-page').waitFor();
    await page.getByTestId('snapshot-item').first().waitFor();
    const before = await page.getByTestId('snapshot-item').count();
    assert.equal(before, 2, 'before-upgrade and nightly');
    // its space: data with the age of the walk, and what the snapshots hold apart
    assert.match((await page.getByTestId('volume-size').textContent()) ?? '', /^\d+(\.\d)? KiB \(measured (just now|\d+ min ago)\)$/);
    // (the commits of its history hold space too, and are counted apart from the snapshots listed)
    assert.match((await page.getByTestId('volume-snapshot-size').textContent()) ?? '', /^\d+(\.\d)? (B|KiB) in 2 snapshot\(s\), 3 commit\(s\) and 1 branch's saved data$/);
    // its schedule, and when it runs next
    const nextYear = new Date().getUTCFullYear() + 1;
    assert.match((await page.getByTestId('volume-schedules').textContent()) ?? '', new RegExp(`^Snapshots @yearly, keep yearly=3 — next .*${nextYear}`));
    assert.match((await page.getByTestId('history-graph').textContent()) ?? '', /new colours/);
    assert.match((await page.getByTestId('history-graph').textContent()) ?? '', /redesign/);
    await page.getByRole('button', { name: 'Snapshot now' }).click();
    // a job: its progress shows on the page while it runs, then the snapshot it made, and the job names it
    await page.getByRole('status').filter({ hasText: /Snapshot of web-data started \(job [0-9a-f]+\)/ }).waitFor();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=snapshot-item]').length === n, before + 1);
    const made = page.getByTestId('job').filter({ hasText: /^snapshot/ }).first();
    await made.waitFor();
    assert.equal(await made.getAttribute('data-state'), 'succeeded');
    assert.match((await made.textContent()) ?? '', /done · \d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ( · \d+ files, \d+ copied)?/);
    const snaps = await apiGet<{ snapshots: Array<{ name: string; origin: string }> }>('/v1/volumes/web-data/snapshots');
    assert.equal(snaps.snapshots.filter((s) => s.origin === 'manual').length, 3);
    await shot('volume');
  });

  it('asks before a restore, naming what is lost; restores; clones a snapshot into a new volume', async () => {
    const restoreOf = (snap: string) => page.getByTestId('snapshot-item').filter({ hasText: snap }).getByRole('button', { name: 'Restore' });
    await restoreOf('before-upgrade').click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /Every change made to web-data since then .* is lost/);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    const web = (await apiGet<{ mountpoint: string }>('/v1/volumes/web-data')).mountpoint;
    assert.ok(existsSync(join(web, 'about.html')), 'cancel changed nothing');
    await restoreOf('before-upgrade').click();
    await dialog.getByRole('button', { name: 'Restore to before-upgrade' }).click();
    await page.getByRole('status').filter({ hasText: 'web-data restored to snapshot before-upgrade' }).waitFor();
    assert.ok(!existsSync(join(web, 'about.html')), 'about.html came after before-upgrade');
    assert.ok(existsSync(join(web, 'index.html')));

    await page.getByTestId('snapshot-item').filter({ hasText: 'nightly' }).getByRole('button', { name: 'Clone' }).click();
    await dialog.getByLabel('New volume name').fill('web-data-copy');
    await dialog.getByRole('button', { name: 'Create volume' }).click();
    await page.getByRole('status').filter({ hasText: 'Volume web-data-copy created from web-data@nightly' }).waitFor();
    const copy = (await apiGet<{ mountpoint: string }>('/v1/volumes/web-data-copy')).mountpoint;
    assert.ok(existsSync(join(copy, 'about.html')), 'the clone has the data of nightly');
  });

  it('starts a backup and follows the job with its progress', async () => {
    await page.goto(url + '/#/volumes/db-main');
    await page.getByTestId('volume-page').waitFor();
    await page.getByLabel('Backup target').selectOption('nas');
    await page.getByRole('button', { name: 'Back up now' }).click();
    await page.getByRole('status').filter({ hasText: /Backup to nas started/ }).waitFor();
    await page.getByRole('link', { name: 'Jobs' }).click();
    const job = page.getByTestId('job').filter({ hasText: 'db-main' }).first();
    await job.waitFor();
    const progress = job.getByTestId('job-progress');
    await progress.waitFor();
    const state = await job.getAttribute('data-state');
    if (state === 'running') {
      // progress moves while it runs (or it ends first)
      await page.waitForFunction(() => {
        const el = document.querySelector('[data-testid=job][data-state] [data-testid=job-progress]');
        const j = el?.closest('[data-testid=job]');
        return j?.getAttribute('data-state') !== 'running' || Number(el?.getAttribute('aria-valuenow')) > 0;
      });
      await shot('jobs');
    }
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=job]')].some((j) => j.textContent?.includes('db-main') && j.getAttribute('data-state') === 'succeeded'), undefined, { timeout: 120_000 });
    if (state !== 'running') await shot('jobs');
    assert.match((await job.textContent()) ?? '', /done · 200 MiB/);
    assert.equal(await progress.getAttribute('aria-valuenow'), '100');
    // the volume page lists the backup, and the snapshot it was made from
    await page.getByRole('link', { name: 'db-main' }).first().click();
    await page.getByTestId('backups').filter({ hasText: /200 MiB, 50 files/ }).waitFor({ timeout: 60_000 });
    assert.equal(await page.getByTestId('snapshot-item').filter({ hasText: 'backup' }).count(), 1);
  });

  it('shows the cluster: the node, the pool with its capacity, counts and warnings', async () => {
    await page.getByRole('link', { name: 'Cluster' }).click();
    await page.getByTestId('cluster-page').waitFor();
    assert.match((await page.getByTestId('node-row').first().textContent()) ?? '', /test-node/);
    const pool = page.getByTestId('pool-row').first();
    assert.match((await pool.textContent()) ?? '', /local/);
    assert.match((await pool.getByRole('progressbar').textContent()) ?? '', /used · .* free · .* in all/);
    const warnings = page.getByTestId('warnings');
    await page.waitForFunction(() => /never backed up/.test(document.querySelector('[data-testid=warnings]')?.textContent ?? ''));
    assert.match((await warnings.textContent()) ?? '', /9 volumes never backed up/); // 11 with the clone; cache-1 and db-main were backed up
    // the target with the wrong password (met on the volume pages before): named with what is wrong
    assert.match((await warnings.textContent()) ?? '', /backup target offsite fails: .*password/);
    assert.doesNotMatch((await warnings.textContent()) ?? '', /backup target nas fails/);
    // the warning opens the volumes it is about
    await warnings.getByRole('link', { name: /9 volumes never backed up/ }).click();
    await page.getByTestId('volumes-page').waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid=volume-count]')?.textContent === '9 of 11 volumes');
    const listed = await page.getByTestId('volume-row').allTextContents();
    assert.ok(listed.every((r) => /never/.test(r)) && !listed.some((r) => /^(cache-1|db-main)/.test(r)), listed.join(' | '));
    assert.equal(await page.getByLabel('Backups').inputValue(), 'never');
    await page.getByLabel('Backups').selectOption('');
    await page.waitForFunction(() => document.querySelector('[data-testid=volume-count]')?.textContent === '11 of 11 volumes');
  });

  it('acts on the history (reset, checkout), a snapshot (delete) and a backup (restore as a new volume, copy its URL, delete), each after a confirmation naming what is lost', async () => {
    type Snap = { id: string; name: string; message?: string; kind: string };
    const all = async () => (await apiGet<{ snapshots: Snap[] }>('/v1/volumes/web-data/snapshots?all=true')).snapshots;
    const commitId = async (message: string) => (await all()).find((c) => c.kind === 'commit' && c.message === message)!.id;
    const web = (await apiGet<{ mountpoint: string }>('/v1/volumes/web-data')).mountpoint;
    await page.goto(url + '/#/volumes/web-data');
    await page.getByTestId('volume-page').waitFor();
    const dialog = page.getByRole('dialog');
    const commitRow = (message: string) => page.getByTestId('commit-row').filter({ hasText: message });
    await commitRow('first page').waitFor();

    // reset master to "first page": the dialog names the commit that leaves the branch
    await commitRow('first page').getByRole('button', { name: 'Reset here' }).click();
    await dialog.waitFor();
    assert.match((await dialog.getByTestId('reset-lost').textContent()) ?? '', /every change not committed since the last commit, and 1 commit\(s\) of master after it, unless another branch holds them: about page/);
    await dialog.getByRole('button', { name: /^Reset to / }).click();
    await page.getByRole('status').filter({ hasText: /master is now at .* first page/ }).waitFor();
    const branches = await apiGet<{ current: string; branches: Array<{ name: string; tip: string }> }>('/v1/volumes/web-data/branches');
    assert.equal(branches.branches.find((b) => b.name === 'master')?.tip, await commitId('first page'));
    assert.equal(await readFile(join(web, 'index.html'), 'utf8'), '<h1>hello</h1>\n');
    assert.ok(!existsSync(join(web, 'about.html')), 'about.html came with the commit after it');

    // check out the redesign branch: nothing is lost, its data comes in
    await commitRow('new colours').getByRole('button', { name: 'Check out' }).click();
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /kept aside .* nothing is lost/);
    await dialog.getByRole('button', { name: 'Switch to redesign' }).click();
    await page.getByRole('status').filter({ hasText: 'web-data is on branch redesign' }).waitFor();
    assert.equal(await readFile(join(web, 'style.css'), 'utf8'), 'body { color: teal }\n');
    assert.equal((await apiGet<{ current: string }>('/v1/volumes/web-data/branches')).current, 'redesign');

    // delete the snapshot "nightly"
    await page.getByTestId('snapshot-item').filter({ hasText: 'nightly' }).getByRole('button', { name: 'Delete' }).click();
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /deleted for good: the state of web-data at that time can no longer be restored/);
    await dialog.getByRole('button', { name: 'Delete snapshot' }).click();
    await page.getByRole('status').filter({ hasText: 'Snapshot nightly of web-data deleted' }).waitFor();
    assert.ok(!(await all()).some((x) => x.name === 'nightly'));
    assert.equal(await page.getByTestId('snapshot-item').filter({ hasText: 'nightly' }).count(), 0);

    // cache-1's backup: copy its URL, restore it into a new volume (byte for byte), delete it
    const [backup] = (await apiGet<{ backups: Array<{ url: string }> }>('/v1/backups?target=nas&volume=cache-1')).backups;
    assert.ok(backup);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
    await page.goto(url + '/#/volumes/cache-1');
    const item = page.getByTestId('backup-item').first();
    await item.waitFor();
    await item.getByRole('button', { name: 'Copy URL' }).click();
    await item.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), backup.url);

    await item.getByRole('button', { name: 'Restore as new volume' }).click();
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /cache-1 itself does not change; nothing is lost/);
    await dialog.getByLabel('New volume name').fill('cache-1-restored');
    await dialog.getByRole('button', { name: 'Restore into new volume' }).click();
    await page.getByRole('status').filter({ hasText: /Restoring the backup .* into a new volume cache-1-restored/ }).waitFor();
    const jobs = await apiGet<{ jobs: Array<{ id: string; volume: string; kind: string }> }>('/v1/jobs');
    const job = jobs.jobs.find((j) => j.volume === 'cache-1-restored')!;
    const done = await apiGet<{ state: string; error?: string }>(`/v1/jobs/${job.id}?wait=true`);
    assert.equal(done.state, 'succeeded', done.error);
    const restored = (await apiGet<{ mountpoint: string }>('/v1/volumes/cache-1-restored')).mountpoint;
    assert.ok((await readFile(join(restored, 'cached.bin'))).equals(cached), 'the restored volume holds the backed-up bytes');

    await item.getByRole('button', { name: 'Delete' }).click();
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /is forgotten, and the data only it holds is deleted by the next prune of nas/);
    await dialog.getByRole('button', { name: 'Delete backup' }).click();
    await page.getByRole('status').filter({ hasText: /removed from nas/ }).waitFor();
    assert.deepEqual((await apiGet<{ backups: unknown[] }>('/v1/backups?target=nas&volume=cache-1')).backups, []);
    await page.getByText('No backup of cache-1 in nas.').waitFor();
  });

  it('fits a 420 px wide screen: no page scrolls sideways', async () => {
    await page.setViewportSize({ width: 420, height: 860 });
    try {
      for (const [hash, testid, name] of [
        ['#/volumes', 'volumes-page', 'volumes-420'],
        ['#/volumes/web-data', 'volume-page', 'volume-420'],
        ['#/cluster', 'cluster-page', undefined],
        ['#/jobs', undefined, undefined],
        ['#/trash', 'trash-page', undefined],
      ] as const) {
        await page.goto(url + '/' + hash);
        if (testid) await page.getByTestId(testid).waitFor();
        if (hash === '#/volumes/web-data') await page.getByTestId('commit-row').first().waitFor();
        await page.waitForLoadState('networkidle');
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(wide <= 420, `${hash} is ${wide} px wide at a 420 px screen`);
        if (name) await shot(name);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('cuts a long commit message in the history, never the buttons after it', async () => {
    const long = 'a very long commit message that says everything about the change '.repeat(5).trim();
    await cli('commit', 'logs-2026', '-m', long);
    await cli('commit', 'logs-2026', '-m', 'short');
    await page.goto(url + '/#/volumes/logs-2026');
    const row = page.getByTestId('commit-row').filter({ hasText: 'a very long' });
    await row.waitFor();
    const box = await row.getByRole('button', { name: 'Reset here' }).boundingBox();
    const width = await page.evaluate(() => document.documentElement.clientWidth);
    assert.ok(box && box.x + box.width <= width, `"Reset here" ends at ${box ? Math.round(box.x + box.width) : '?'} px, past the page's ${width} px`);
    assert.equal(await row.locator('.message').getAttribute('title'), long, 'the whole message is in its tooltip');
    await page.goto(url + '/#/volumes');
    await page.getByTestId('volumes-page').waitFor();
  });

  it('shows the trash with who removed what and when it is purged; undeletes with the data back, purges after asking', async () => {
    const grafana = (await apiGet<{ mountpoint: string }>('/v1/volumes/grafana')).mountpoint;
    await writeFile(join(grafana, 'dashboards.json'), '{"panels": 12}\n');
    await cli('volume', 'rm', 'grafana');
    await cli('volume', 'rm', 'prometheus');
    await page.getByRole('link', { name: 'Trash' }).click();
    await page.getByTestId('trash-page').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=trash-row]').length === 2);
    const row = (name: string) => page.getByTestId('trash-row').filter({ hasText: name });
    const text = (await row('grafana').textContent()) ?? '';
    assert.match(text, /grafana.*local.*just now.*test-node.*in 2[34] h/, text);
    assert.doesNotMatch((await page.getByTestId('trash-page').textContent()) ?? '', /in 1 days/);
    await shot('trash');

    await row('grafana').getByRole('button', { name: 'Undelete' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.equal(await dialog.getByLabel('Name').inputValue(), 'grafana');
    await dialog.getByRole('button', { name: 'Undelete' }).click();
    await page.getByRole('status').filter({ hasText: 'grafana is back' }).waitFor();
    const back = (await apiGet<{ mountpoint: string }>('/v1/volumes/grafana')).mountpoint;
    assert.equal(await readFile(join(back, 'dashboards.json'), 'utf8'), '{"panels": 12}\n', 'the data came back byte for byte');

    await page.waitForFunction(() => document.querySelectorAll('[data-testid=trash-row]').length === 1);
    await row('prometheus').getByRole('button', { name: 'Purge' }).click();
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /deletes the data of prometheus .* cannot be undone/);
    await dialog.getByRole('button', { name: 'Delete for good' }).click();
    await page.getByRole('status').filter({ hasText: 'prometheus (removed' }).waitFor();
    await page.getByText('The trash is empty.').waitFor();
    assert.deepEqual((await apiGet<{ trash: unknown[] }>('/v1/trash')).trash, []);
  });

  it('with a read token: write actions are disabled; logging out forgets the token', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ferry.token')), null);
    await page.getByLabel('Token').fill(reader);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.goto(url + '/#/volumes/web-data');
    await page.getByTestId('volume-page').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Snapshot now' }).isDisabled(), true);
    assert.equal(await page.getByRole('button', { name: 'Restore' }).count(), 0);
    assert.match((await page.locator('.who').textContent()) ?? '', /ui-reader \(read\)/);
  });
});

describe('Volume Hub web UI: the cluster page with two nodes sharing pools', { skip }, () => {
  let base: string;
  let a: Ferryd;
  let b: Ferryd;
  let browser: Browser;

  const node = async (name: string, pools: string[]) => {
    const dir = join(base, name);
    await mkdir(dir, { recursive: true });
    const cfg = ['heartbeatInterval: 200ms', 'nodeTimeout: 1500ms', 'defaultPool: nas', 'pools:', ...pools.flatMap((p) => [`  ${p}:`, `    path: ${join(base, p)}`, '    shared: true'])];
    await writeFile(join(dir, 'ferry.yaml'), cfg.join('\n'));
    return startFerryd({ dir, logLevel: 'info', env: { FERRY_CAPACITY_INTERVAL_MS: '300' }, extraArgs: ['--config', join(dir, 'ferry.yaml'), '--node', name, ...(name === 'hostA' ? ['--api-listen', '127.0.0.1:0'] : [])] });
  };

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-ui-cl-'));
    // two "NAS" shares, already mounted (the marker file says so): hostA has both, hostB only nas
    for (const p of ['nas', 'archive']) {
      await mkdir(join(base, p));
      await writeFile(join(base, p, '.ferry-pool'), 'test share\n');
    }
    a = await node('hostA', ['nas', 'archive']);
    b = await node('hostB', ['nas']);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await a?.destroy();
    await b?.destroy();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('shows both nodes with their heartbeat, a pool one node lacks, attachments on the other node, and a node that stops', async () => {
    const ok = async (f: Ferryd, ...args: string[]) => {
      const r = await f.cli(...args);
      assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const admin = (await ok(a, 'token', 'create', '--role', 'admin')).trim();
    for (const v of ['shared-db', 'shared-web', 'shared-cache']) await ok(a, 'volume', 'create', v, '-o', 'pool=nas', '--label', 'team=platform');
    await ok(a, 'volume', 'create', 'old-reports', '-o', 'pool=archive');
    // hostB mounts shared-db, as its Docker would for a container
    const m = await b.plugin('Mount', { Name: 'shared-db', ID: 'c0ffee0123456789' });
    assert.equal(m.json?.Err, '', m.text);

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    await page.addInitScript((t: string) => sessionStorage.setItem('ferry.token', t), admin);
    const url = await tcpBase(a);
    await page.goto(`${url}/#/cluster`);
    await page.getByTestId('cluster-page').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=node-row]').length === 2);
    const rows = await page.getByTestId('node-row').allTextContents();
    assert.match(rows.join('\n'), /hostA.*this node.*alive/);
    assert.match(rows.join('\n'), /hostB.*alive/);
    const warnings = page.getByTestId('warnings');
    await warnings.waitFor();
    // the volume list (for the backup warnings) is a call of its own: it may come after the status
    await page.waitForFunction(() => /never backed up/.test(document.querySelector('[data-testid=warnings]')?.textContent ?? ''));
    assert.match((await warnings.textContent()) ?? '', /pool archive not mounted on node hostB/);
    assert.match((await warnings.textContent()) ?? '', /4 volumes never backed up/);
    const pools = (await page.getByTestId('pool-row').allTextContents()).join('\n');
    assert.match(pools, /nas\s*shared/);
    assert.match(pools, /archive\s*shared/);
    // each pool's space over time, and each node's own pool (local) from its heartbeat
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=capacity-chart] figcaption')].some((c) => / \(([3-9]|\d\d+) samples\)/.test(c.textContent ?? '')), undefined, { timeout: 15_000 });
    assert.match((await page.getByTestId('capacity-chart').first().textContent()) ?? '', /^used \d+\.\d % → \d+\.\d % over \d+ s \(\d+ samples\)$/);
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=node-capacity]')].filter((c) => /local: .* used · .* free/.test(c.textContent ?? '')).length === 2, undefined, { timeout: 15_000 });
    await page.screenshot({ path: join(SHOTS, 'cluster.png') });

    // the volumes table says where shared-db is in use
    await page.getByRole('link', { name: 'Volumes', exact: true }).click();
    const row = page.getByTestId('volume-row').filter({ hasText: 'shared-db' });
    await row.waitFor();
    assert.match((await row.getByTestId('volume-users').textContent()) ?? '', /^1 mount \(hostB\)$/);
    await page.getByLabel('Node').selectOption('hostB');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=volume-row]').length === 1);

    // hostB stops: after the node timeout the page says so
    await b.stop();
    await page.getByRole('link', { name: 'Cluster' }).click();
    await page.waitForFunction(() => /hostB has not sent a heartbeat/.test(document.querySelector('[data-testid=warnings]')?.textContent ?? ''), undefined, { timeout: 15_000 });
    await page.close();
  });
});
