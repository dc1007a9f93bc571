/**
 * Volume Hub figures: the web UI's first load in Chromium (bytes transferred, time until the volumes table
 * shows 1,000 rows), the latency of GET /v1/volumes over TCP, against a real ferryd with 1,000 volumes, and
 * the page of one mounted volume with 200 snapshots and 100 backups.
 *
 *   npm run build && node dist/bench/ui.js [loads=5] [apiCalls=20]
 *
 * Writes bench/results/ui-YYYY-MM-DD.md (UTC date). Needs Debian's Chromium (/usr/bin/chromium).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startFerryd, unixRequest, ROOT, type Ferryd } from '../test/helpers/ferryd.js';
import { launchChromium, tcpBase, CHROMIUM } from '../test/helpers/browser.js';
import { median, percentile } from './lib.js';
import type { Browser } from 'playwright-core';

const LOADS = Number(process.argv[2] ?? 5);
const API_CALLS = Number(process.argv[3] ?? 20);
const VOLUMES = 1000;
const SNAPSHOTS = 200;
const BACKUPS = 100;

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function main(): Promise<void> {
  const started = Date.now();
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
  let f: Ferryd | undefined;
  let browser: Browser | undefined;
  const work = await mkdtemp(join(tmpdir(), 'ferry-bench-ui-'));
  try {
    await mkdir(join(work, 'repo'));
    await writeFile(join(work, 'key'), 'bench password\n', { mode: 0o600 });
    await writeFile(join(work, 'ferry.yaml'), ['backupTargets:', '  nas:', `    url: file://${join(work, 'repo')}`, `    passwordFile: ${join(work, 'key')}`].join('\n'));
    f = await startFerryd({ extraArgs: ['--api-listen', '127.0.0.1:0', '--config', join(work, 'ferry.yaml')], logLevel: 'info' });
    const base = await tcpBase(f);
    const token = (await f.cli('token', 'create', '--role', 'admin', '--name', 'bench')).stdout.trim();
    // 1,000 volumes through the API socket, 8 at a time, a label on each (not timed)
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < VOLUMES) {
          const i = next++;
          const body = JSON.stringify({ name: `vol-${String(i).padStart(4, '0')}`, labels: { app: `app-${i % 20}`, tier: i % 3 === 0 ? 'critical' : 'normal' } });
          const r = await unixRequest(f!.apiSocket, 'POST', '/v1/volumes', body, { 'content-type': 'application/json' });
          if (r.status !== 201) throw new Error(`create vol-${i}: ${r.status} ${r.text}`);
        }
      }),
    );
    const createMs = performance.now() - t0;

    // API latency: GET /v1/volumes over TCP with the bearer token, one at a time; plain JSON as the CLI asks
    // for it, and gzipped as a browser asks for it (fetch decompresses: that time is counted)
    const measure = async (encoding: string) => {
      const times: number[] = [];
      let wire = 0;
      for (let i = 0; i < API_CALLS + 2; i++) {
        const s = performance.now();
        const res = await fetch(`${base}/v1/volumes`, { headers: { authorization: `Bearer ${token}`, 'accept-encoding': encoding } });
        const body = await res.arrayBuffer();
        const d = performance.now() - s;
        if (res.status !== 200) throw new Error(`GET /v1/volumes: ${res.status}`);
        wire = Number(res.headers.get('content-length') ?? body.byteLength);
        if (i >= 2) times.push(d); // two warm-up calls
      }
      return { times, sorted: [...times].sort((a, b) => a - b), wire };
    };
    const plainApi = await measure('identity');
    const gzipApi = await measure('gzip');
    const api = plainApi.times;
    const apiBytes = plainApi.wire;
    const apiSorted = plainApi.sorted;

    // UI first load: a fresh browser context each time (empty cache), token already in sessionStorage
    browser = await launchChromium();
    const loads: Array<{ rows: number; list: number; render: number; shell: number; bytes: number; staticBytes: number; apiBytesUi: number; requests: number }> = [];
    for (let i = 0; i < LOADS; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await ctx.addInitScript((t: string) => sessionStorage.setItem('ferry.token', t), token);
      const page = await ctx.newPage();
      const sizes: Array<Promise<{ url: string; bytes: number }>> = [];
      page.on('requestfinished', (req) => sizes.push(req.sizes().then((s) => ({ url: req.url(), bytes: s.responseBodySize + s.responseHeadersSize }))));
      await page.goto(`${base}/`);
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid=volume-row]').length === n, VOLUMES, { timeout: 60_000, polling: 'raf' });
      // runs in the page (a browser's performance object; the Node types do not know 'navigation' entries)
      const t = (await page.evaluate(
        `({ now: performance.now(), dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd, list: performance.getEntriesByType('resource').find((e) => /\/v1\/volumes(\?|$)/.test(e.name)).responseEnd })`,
      )) as { now: number; dcl: number; list: number };
      const got = await Promise.all(sizes);
      const staticBytes = got.filter((g) => !new URL(g.url).pathname.startsWith('/v1/')).reduce((a, g) => a + g.bytes, 0);
      const apiBytesUi = got.filter((g) => new URL(g.url).pathname.startsWith('/v1/')).reduce((a, g) => a + g.bytes, 0);
      loads.push({ rows: t.now, list: t.list, render: t.now - t.list, shell: t.dcl, bytes: staticBytes + apiBytesUi, staticBytes, apiBytesUi, requests: got.length });
      await ctx.close();
    }

    // the page of the busiest volume: mounted (as for a container), 200 snapshots, 100 backups
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await unixRequest(f!.apiSocket, method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
      return JSON.parse(r.text) as Record<string, unknown>;
    };
    const s0 = performance.now();
    if ((await f.cli('backup', 'init', '--target', 'nas')).code !== 0) throw new Error('backup init failed');
    await call('POST', '/v1/volumes', { name: 'busy', labels: { app: 'db' } });
    const m = await f.plugin('Mount', { Name: 'busy', ID: 'c0ffee' });
    const mp = String(m.json?.Mountpoint);
    for (let i = 0; i < SNAPSHOTS; i++) {
      await writeFile(join(mp, `file-${i % 10}`), `version ${i}\n`);
      await call('POST', '/v1/volumes/busy/snapshots', { name: `snap-${String(i).padStart(3, '0')}` });
    }
    for (let i = 0; i < BACKUPS; i++) {
      await writeFile(join(mp, 'counter'), `backup ${i}\n`);
      const j = await call('POST', '/v1/volumes/busy/backups', { target: 'nas' });
      const done = await call('GET', `/v1/jobs/${String(j.id)}?wait=true`);
      if (done.state !== 'succeeded') throw new Error(`backup ${i}: ${JSON.stringify(done.error)}`);
    }
    const setupBusyMs = performance.now() - s0;
    const pageLoads: Array<{ shown: number; bytes: number; requests: number }> = [];
    for (let i = 0; i < LOADS; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await ctx.addInitScript((t: string) => sessionStorage.setItem('ferry.token', t), token);
      const page = await ctx.newPage();
      const sizes: Array<Promise<number>> = [];
      page.on('requestfinished', (req) => sizes.push(req.sizes().then((x) => x.responseBodySize + x.responseHeadersSize)));
      const t = performance.now();
      await page.goto(`${base}/#/volumes/busy`);
      await page.waitForFunction(
        ([s, b]) => document.querySelectorAll('[data-testid=snapshot-item]').length >= s && document.querySelectorAll('[data-testid=backup-item]').length === b,
        [SNAPSHOTS, BACKUPS] as const,
        { timeout: 60_000, polling: 'raf' },
      );
      const shown = performance.now() - t;
      const got = await Promise.all(sizes);
      pageLoads.push({ shown, bytes: got.reduce((a, b) => a + b, 0), requests: got.length });
      await ctx.close();
    }
    await browser.close();
    browser = undefined;

    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', 'src', 'ui'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const chromiumVersion = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
    const med = (k: keyof (typeof loads)[0]) => median(loads.map((l) => l[k]));
    const lines = [
      `# Volume Hub UI and API with ${VOLUMES} volumes — ${new Date().toISOString()}`,
      '',
      `\`node dist/bench/ui.js ${LOADS} ${API_CALLS}\`, ferry ${commit}${dirty ? ' (with uncommitted changes in src/ or ui/)' : ''}; whole run ${((Date.now() - started) / 1000).toFixed(0)} s`,
      '',
      '| machine | |',
      '|---|---|',
      `| nproc | ${cpus().length} (${cpus()[0]?.model ?? '?'}) |`,
      `| node | ${process.version} |`,
      `| browser | ${chromiumVersion}, headless, driven by playwright-core |`,
      `| load average | ${load0} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end |`,
      '',
      ...(Number(load0.split(' ')[0]) > cpus().length ? [`**The machine was busy** (load average above the ${cpus().length} CPUs at the start): the browser's rendering shares the CPUs with other work, so times are higher than on a quiet machine.`, ''] : []),
      `ferryd on 127.0.0.1 (TCP listener, bearer token, no TLS) with ${VOLUMES} volumes in its default pool, each with two labels; created through the API socket in ${(createMs / 1000).toFixed(1)} s (not part of the figures).`,
      '',
      `## UI first load (median of ${LOADS}, each in a fresh browser context: empty cache)`,
      '',
      'Time is from the start of the navigation to `/` (the token already in sessionStorage, as after a login) until the table has all 1,000 rows in the DOM (checked every animation frame). Bytes are what crossed the connection: response headers and bodies as sent (everything gzipped: the page and its assets, and the API answers above 16 KiB).',
      '',
      '| figure | median | min | max |',
      '|---|---|---|---|',
      `| time to show ${VOLUMES} volumes | **${ms(med('rows'))}** | ${ms(Math.min(...loads.map((l) => l.rows)))} | ${ms(Math.max(...loads.map((l) => l.rows)))} |`,
      `| — of which: the /v1/volumes answer has arrived (page and assets, then /v1/status and /v1/volumes in parallel) | ${ms(med('list'))} | ${ms(Math.min(...loads.map((l) => l.list)))} | ${ms(Math.max(...loads.map((l) => l.list)))} |`,
      `| — of which: rendering the 1,000 rows (Preact, then the browser's style and layout) | ${ms(med('render'))} | ${ms(Math.min(...loads.map((l) => l.render)))} | ${ms(Math.max(...loads.map((l) => l.render)))} |`,
      `| DOMContentLoaded (page and assets loaded, app started) | ${ms(med('shell'))} | ${ms(Math.min(...loads.map((l) => l.shell)))} | ${ms(Math.max(...loads.map((l) => l.shell)))} |`,
      `| bytes transferred, all | **${kib(med('bytes'))}** | | |`,
      `| — the page: HTML, JS, CSS | ${kib(med('staticBytes'))} | | |`,
      `| — API answers (/v1/status, /v1/volumes) | ${kib(med('apiBytesUi'))} | | |`,
      `| requests | ${med('requests')} | | |`,
      '',
      `Every sample, time to show ${VOLUMES} volumes (ms): ${loads.map((l) => l.rows.toFixed(0)).join(', ')}`,
      '',
      `## The page of one volume with ${SNAPSHOTS} snapshots and ${BACKUPS} backups (median of ${LOADS}, each in a fresh browser context)`,
      '',
      `The volume is mounted (as for a container); ${SNAPSHOTS} named snapshots and ${BACKUPS} backups to a file target, made through the API in ${(setupBusyMs / 1000).toFixed(1)} s (not timed). Time from the navigation (timed in Node, so it includes the page and its assets) until the timeline shows every snapshot and the backups list all ${BACKUPS} backups.`,
      '',
      '| figure | median | min | max |',
      '|---|---|---|---|',
      `| time to show the volume page, all snapshots and backups | **${ms(median(pageLoads.map((l) => l.shown)))}** | ${ms(Math.min(...pageLoads.map((l) => l.shown)))} | ${ms(Math.max(...pageLoads.map((l) => l.shown)))} |`,
      `| bytes transferred, all | ${kib(median(pageLoads.map((l) => l.bytes)))} | | |`,
      `| requests | ${median(pageLoads.map((l) => l.requests))} | | |`,
      '',
      `Every sample (ms): ${pageLoads.map((l) => l.shown.toFixed(0)).join(', ')}`,
      '',
      `## API: GET /v1/volumes over TCP with ${VOLUMES} volumes (${API_CALLS} calls after 2 warm-ups, one at a time, fetch from Node on the same host; the time includes reading the whole answer)`,
      '',
      '| asked as | median | p90 | min | max | bytes on the wire |',
      '|---|---|---|---|---|---|',
      `| plain JSON (the CLI) | **${ms(median(api))}** | ${ms(percentile(apiSorted, 90))} | ${ms(apiSorted[0]!)} | ${ms(apiSorted[apiSorted.length - 1]!)} | ${kib(apiBytes)} |`,
      `| gzip (a browser) | **${ms(median(gzipApi.times))}** | ${ms(percentile(gzipApi.sorted, 90))} | ${ms(gzipApi.sorted[0]!)} | ${ms(gzipApi.sorted[gzipApi.sorted.length - 1]!)} | ${kib(gzipApi.wire)} |`,
      '',
    ];
    const report = lines.join('\n');
    process.stdout.write(report + '\n');
    const out = join(ROOT, 'bench', 'results', `ui-${new Date().toISOString().slice(0, 10)}.md`);
    await mkdir(join(ROOT, 'bench', 'results'), { recursive: true });
    await writeFile(out, report);
    process.stderr.write(`written to ${out}\n`);
  } finally {
    await browser?.close();
    await f?.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
