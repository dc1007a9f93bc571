/**
 * /metrics of a real ferryd by Prometheus conventions: every family with HELP and TYPE, no duplicated
 * series, counters end in _total, units last and in base units (bytes, seconds), one `result` vocabulary
 * (ok, error), ferry_build_info, per-volume bytes and creation time, the never-backed-up count, the
 * per-volume backup series with a `target` label that change with a real backup to a file:// target, the
 * heartbeat of a node of a shared pool; the list of ferry_* families equals docs/api.md's metrics table.
 * Then contrib/: every metric name in the Grafana dashboard and the alert rules (and the series of the
 * rules' unit test) is one this ferryd serves, with labels it serves; promtool checks the rules, runs
 * their unit test (each alert fires) and parses every dashboard query.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROOT, startFerryd, unixRequest, type Ferryd } from '../helpers/ferryd.js';
import { skipUnless } from '../helpers/prereq.js';

interface Family {
  help?: string;
  type?: string;
  /** Sample name (with _bucket, _sum, _count for histograms), labels, value. */
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** The text format 0.0.4, strictly: a HELP and a TYPE once per family, each sample after its family's TYPE. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, 'HELP' | 'TYPE', string, string];
      const f = families.get(name) ?? { samples: [] };
      if (kind === 'HELP') {
        assert.equal(f.help, undefined, `two HELP lines for ${name}`);
        f.help = rest;
      } else {
        assert.equal(f.type, undefined, `two TYPE lines for ${name}`);
        f.type = rest;
      }
      families.set(name, f);
      current = name;
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const [, name, labelText, value] = m as unknown as [string, string, string | undefined, string];
    assert.ok(current && (name === current || (families.get(current)?.type === 'histogram' && [`${current}_bucket`, `${current}_sum`, `${current}_count`].includes(name))), `${name} outside its family (after ${current})`);
    const labels: Record<string, string> = {};
    for (const l of (labelText ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    families.get(current)!.samples.push({ name, labels, value: Number(value) });
  }
  return families;
}

const seriesKey = (s: { name: string; labels: Record<string, string> }) => `${s.name}{${Object.keys(s.labels).sort().map((k) => `${k}=${JSON.stringify(s.labels[k])}`).join(',')}}`;

/** The value of the one series of this name with exactly these labels (histogram le excluded), or undefined. */
function value(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = seriesKey({ name, labels });
  for (const f of fams.values()) for (const s of f.samples) if (seriesKey(s) === want) return s.value;
  return undefined;
}

/** The names a PromQL expression reads: identifiers before `{`, `[`, `)` or an operator that are not functions, keywords or labels. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}') // label matchers
    .replace(/\blabel_values\(([^,]+),[^)]*\)/g, '$1') // Grafana's: the metric, then a label name
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?=\s*(\{|\[|\)|$|\s|[-+*/<>=!]|,))/g)) {
    const n = m[1]!;
    if (/^(sum|max|min|avg|count|topk|bottomk|rate|increase|irate|time|vector|histogram_quantile|label_values|and|or|unless|le|bool|offset|\$__rate_interval|h|m|s|d)$/.test(n)) continue;
    if (/^\d/.test(n)) continue;
    names.add(n);
  }
  return [...names];
}

function sh(cmd: string, args: string[], cwd?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 8 << 20 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }));
  });
}

/** The renamed and removed series (docs/api.md's rename table): none may come back. */
const OLD_NAMES = ['ferry_pool_bytes_used', 'ferry_pool_bytes_free', 'ferry_backup_bytes_total', 'ferry_backup_bytes_added_total', 'ferry_last_backup_timestamp_seconds', 'ferry_last_backup_age_seconds'];

describe('/metrics of a real ferryd by Prometheus conventions', () => {
  let f: Ferryd;
  let base: string;
  let repo: string;
  const scrape = async () => {
    const a = await unixRequest(f.apiSocket, 'GET', '/metrics');
    assert.equal(a.status, 200, a.text);
    assert.match(String(a.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return parseExposition(a.text);
  };
  const api = async (method: string, path: string, body?: unknown, status = 200) => {
    const a = await unixRequest(f.apiSocket, method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
    assert.equal(a.status, status, `${method} ${path}: ${a.text}`);
    return a.json;
  };
  /** The families after the backups below: the contrib checks read these. */
  let served: Map<string, Family>;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-metrics-'));
    const share = join(base, 'share');
    repo = join(base, 'repo');
    await mkdir(share);
    await writeFile(join(share, '.ferry-pool'), '');
    const config = ['heartbeatInterval: 200ms', 'nodeTimeout: 30s', 'pools:', '  nas:', `    path: ${share}`, '    shared: true', 'backupTargets:', '  offsite:', `    url: file://${repo}`, ''];
    await writeFile(join(base, 'ferry.yaml'), config.join('\n'));
    f = await startFerryd({ dir: join(base, 'node'), extraArgs: ['--config', join(base, 'ferry.yaml')] });
  });
  after(async () => {
    await f?.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it('serves every family with HELP and TYPE, no series twice, names and units by the conventions', async () => {
    assert.equal((await f.plugin('Create', { Name: 'vol-a' })).status, 200);
    assert.equal((await f.plugin('Create', { Name: 'vol-shared', Opts: { pool: 'nas' } })).status, 200);
    assert.equal((await f.plugin('Mount', { Name: 'no-such', ID: 'c1' })).status, 500); // a plugin error series
    const fams = await scrape();
    const seen = new Set<string>();
    for (const [name, fam] of fams) {
      assert.ok(fam.help && fam.help.length > 10, `${name}: no HELP`);
      assert.ok(fam.type && ['counter', 'gauge', 'histogram', 'summary'].includes(fam.type), `${name}: TYPE ${fam.type}`);
      for (const s of fam.samples) {
        const k = seriesKey(s);
        assert.ok(!seen.has(k), `series twice: ${k}`);
        seen.add(k);
        if ('result' in s.labels) assert.ok(['ok', 'error'].includes(s.labels.result!), `${k}: result must be ok or error`);
      }
      if (!name.startsWith('ferry_')) continue;
      assert.equal(fam.type === 'counter', name.endsWith('_total'), `${name}: counters and only counters end in _total`);
      const bare = name.replace(/_total$/, '');
      assert.doesNotMatch(bare, /_(bytes|seconds)_/, `${name}: the unit comes last`);
      assert.doesNotMatch(name, /_(ms|milliseconds|minutes|hours|days|kb|kib|mb|mib|gb|gib|percent)(_|$)/, `${name}: base units (bytes, seconds, ratios)`);
      if (fam.type === 'histogram') assert.match(name, /_seconds$/, `${name}: histograms here are durations`);
    }
    for (const old of OLD_NAMES) assert.ok(!fams.has(old), `${old} is still served`);
    // one family per fact: no name says what another says with a unit moved
    const ferry = [...fams.keys()].filter((n) => n.startsWith('ferry_'));
    const shape = (n: string) => n.split('_').sort().join('_');
    assert.equal(new Set(ferry.map(shape)).size, ferry.length, 'two families with the same words');

    // what the docs list is what is served, no more, no less
    const doc = await readFile(join(ROOT, 'docs', 'api.md'), 'utf8');
    const table = doc.slice(doc.indexOf('## Metrics'), doc.indexOf('## Routes'));
    const documented = new Set([...table.matchAll(/^\| ([^|]+) \| (?:gauge|counter|histogram) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`(ferry_[a-z0-9_]+)`/g)].map((x) => x[1]!)));
    assert.deepEqual([...documented].sort(), ferry.sort(), 'docs/api.md metrics table vs. /metrics');

    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(value(fams, 'ferry_build_info', { version: pkg.version, node: 'test-node', nodejs: process.version }), 1);
    assert.equal(fams.get('ferry_build_info')!.samples.length, 1);
  });

  it('per volume: creation time, data bytes; pools in bytes; a shared pool\'s node heartbeat', async () => {
    await api('GET', '/v1/volumes/vol-a?usage=true'); // a walk now, so the data figure is there
    const fams = await scrape();
    const created = value(fams, 'ferry_volume_created_timestamp_seconds', { volume: 'vol-a', pool: 'local' });
    const vol = (await api('GET', '/v1/volumes/vol-a')) as { createdAt: string };
    assert.equal(created, Date.parse(vol.createdAt) / 1000);
    assert.ok(value(fams, 'ferry_volume_created_timestamp_seconds', { volume: 'vol-shared', pool: 'nas' })! > 0);
    assert.ok((value(fams, 'ferry_volume_data_bytes', { volume: 'vol-a', pool: 'local' }) ?? -1) >= 0, 'data bytes of vol-a');
    for (const pool of ['local', 'nas']) {
      assert.equal(value(fams, 'ferry_pool_up', { pool }), 1);
      assert.ok(value(fams, 'ferry_pool_used_bytes', { pool })! > 0);
      assert.ok(value(fams, 'ferry_pool_free_bytes', { pool })! > 0);
      assert.equal(value(fams, 'ferry_volumes_never_backed_up', { pool }), 1);
    }
    assert.equal(value(fams, 'ferry_cluster_node_up', { node: 'test-node' }), 1);
    const beat = value(fams, 'ferry_cluster_node_last_heartbeat_timestamp_seconds', { node: 'test-node' })!;
    const status = (await api('GET', '/v1/status')) as { cluster: { nodes: Array<{ node: string; lastSeen: string }> } };
    assert.ok(beat > 0 && beat <= Date.now() / 1000, `heartbeat ${beat}`);
    assert.ok(status.cluster.nodes.some((n) => n.node === 'test-node'));
    assert.equal(value(fams, 'ferry_plugin_calls_total', { endpoint: 'VolumeDriver.Mount', result: 'error' }), 1);
    assert.equal(value(fams, 'ferry_plugin_calls_total', { endpoint: 'VolumeDriver.Create', result: 'ok' }), 2);
  });

  it('a backup to a file:// target: the target label, the last-backup series and the never-backed-up count change', async () => {
    const before = await scrape();
    assert.equal(value(before, 'ferry_volume_last_backup_timestamp_seconds', { volume: 'vol-a', target: 'offsite' }), undefined);
    assert.equal(before.get('ferry_volume_last_backup_timestamp_seconds')!.samples.length, 0, 'no backup yet, no series');
    await writeFile(join(f.dataDir, 'volumes', 'vol-a', 'data', 'file'), 'some data to back up\n');
    await api('POST', '/v1/backups/init', { target: 'offsite', encryption: 'none' }, 201);
    const t0 = Math.floor(Date.now() / 1000);
    const job = (await api('POST', '/v1/volumes/vol-a/backups', { target: 'offsite' }, 202)) as { id: string };
    assert.equal(((await api('GET', `/v1/jobs/${job.id}?wait=true`)) as { state: string }).state, 'succeeded');

    const after = await scrape();
    const last = value(after, 'ferry_volume_last_backup_timestamp_seconds', { volume: 'vol-a', target: 'offsite' });
    assert.ok(last !== undefined && last >= t0 && last <= Date.now() / 1000, `last backup ${last}`);
    assert.equal(value(after, 'ferry_volume_backup_failing', { volume: 'vol-a', target: 'offsite' }), 0);
    assert.equal(value(after, 'ferry_backups_total', { target: 'offsite', result: 'ok' }), 1);
    assert.equal(value(after, 'ferry_backup_duration_seconds_count', { target: 'offsite' }), 1);
    assert.ok(value(after, 'ferry_backup_read_bytes_total', { target: 'offsite' })! >= 'some data to back up\n'.length);
    assert.ok(value(after, 'ferry_backup_added_bytes_total', { target: 'offsite' })! > 0);
    assert.equal(value(after, 'ferry_jobs_total', { kind: 'backup', result: 'ok' }), 1);
    assert.equal(value(after, 'ferry_volumes_never_backed_up', { pool: 'local' }), 0);
    assert.equal(value(after, 'ferry_volumes_never_backed_up', { pool: 'nas' }), 1);
    // the volume list reads the same record
    const list = (await api('GET', '/v1/volumes')) as { volumes: Array<{ name: string; lastBackupAt?: string }> };
    assert.equal(Date.parse(list.volumes.find((v) => v.name === 'vol-a')!.lastBackupAt!) / 1000, last);
    assert.equal(list.volumes.find((v) => v.name === 'vol-shared')!.lastBackupAt, undefined);

    // a target given by a URL that no configured target has: the URL is the label
    const other = `file://${join(base, 'other-repo')}`;
    await api('POST', '/v1/backups/init', { target: other, encryption: 'none' }, 201);
    const job2 = (await api('POST', '/v1/volumes/vol-shared/backups', { target: other }, 202)) as { id: string };
    assert.equal(((await api('GET', `/v1/jobs/${job2.id}?wait=true`)) as { state: string }).state, 'succeeded');
    served = await scrape();
    assert.ok(value(served, 'ferry_volume_last_backup_timestamp_seconds', { volume: 'vol-shared', target: other })! >= t0);
    assert.equal(value(served, 'ferry_backups_total', { target: other, result: 'ok' }), 1);
    assert.equal(value(served, 'ferry_volumes_never_backed_up', { pool: 'nas' }), 0);
    // the record is the backup service's, kept across a restart (counters start again)
    await f.stop();
    await f.start();
    const restarted = await scrape();
    assert.equal(value(restarted, 'ferry_volume_last_backup_timestamp_seconds', { volume: 'vol-a', target: 'offsite' }), last);
    assert.equal(value(restarted, 'ferry_backups_total', { target: 'offsite', result: 'ok' }), undefined);

    // a volume removed and made again under its name has not been backed up
    assert.equal((await f.plugin('Remove', { Name: 'vol-a' })).status, 200);
    assert.equal((await f.plugin('Create', { Name: 'vol-a' })).status, 200);
    const remade = await scrape();
    assert.equal(value(remade, 'ferry_volume_last_backup_timestamp_seconds', { volume: 'vol-a', target: 'offsite' }), undefined);
    assert.equal(value(remade, 'ferry_volume_backup_failing', { volume: 'vol-a', target: 'offsite' }), undefined);
    assert.equal(value(remade, 'ferry_volumes_never_backed_up', { pool: 'local' }), 1);
    const relisted = (await api('GET', '/v1/volumes')) as { volumes: Array<{ name: string; lastBackupAt?: string }> };
    assert.equal(relisted.volumes.find((v) => v.name === 'vol-a')!.lastBackupAt, undefined);
  });

  describe('contrib/: the Grafana dashboard and the Prometheus rules read what ferryd serves', () => {
    const rulesFile = join(ROOT, 'contrib', 'prometheus', 'ferry-alerts.yml');
    const rulesTest = join(ROOT, 'contrib', 'prometheus', 'ferry-alerts.test.yml');
    const dashFile = join(ROOT, 'contrib', 'grafana', 'ferry-dashboard.json');
    /** Families this ferryd serves (histograms also by their sample names) */
    const servedNames = () => {
      const names = new Set<string>();
      for (const [n, fam] of served) {
        names.add(n);
        if (fam.type === 'histogram') for (const x of ['_bucket', '_sum', '_count']) names.add(n + x);
      }
      return names;
    };
    const familyOf = (n: string) => served.get(n) ?? served.get(n.replace(/_(bucket|sum|count)$/, ''));
    const rules = async () => parseYaml(await readFile(rulesFile, 'utf8')) as { groups: Array<{ name: string; rules: Array<{ alert?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }> };
    const dashboardExprs = async () => {
      const dash = JSON.parse(await readFile(dashFile, 'utf8')) as { uid: string; panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>; templating: { list: Array<{ name: string; definition?: string }> } };
      return { dash, exprs: dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).concat(dash.templating.list.flatMap((v) => (v.definition ? [v.definition] : []))) };
    };

    it('the alert rules: the alerts asked for, each with severity and summary, on names ferryd serves', async () => {
      assert.ok(served, 'the backup test ran first');
      const r = await rules();
      const alerts = r.groups.flatMap((g) => g.rules);
      assert.deepEqual(alerts.map((a) => a.alert).sort(), ['FerryBackupFailing', 'FerryBackupTooOld', 'FerryNodeDead', 'FerryPoolDown', 'FerryPoolNearlyFull', 'FerryVolumeNeverBackedUp', 'FerrydDown']);
      const names = servedNames();
      for (const a of alerts) {
        assert.ok(a.labels?.severity && a.annotations?.summary, `${a.alert}: severity and summary`);
        const used = metricNames(a.expr);
        assert.ok(used.length > 0, `${a.alert}: no metric found in ${a.expr}`);
        // `up` is Prometheus's own series of a scrape target
        for (const n of used) assert.ok(n === 'up' || names.has(n), `${a.alert}: ${n} is not served by ferryd`);
      }
    });

    it('the rules\' unit test feeds series that ferryd serves, with the labels it serves', async () => {
      const t = parseYaml(await readFile(rulesTest, 'utf8')) as { tests: Array<{ input_series: Array<{ series: string }> }> };
      const series = t.tests.flatMap((x) => x.input_series.map((s) => s.series));
      assert.ok(series.length >= 10);
      for (const s of series) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$/.exec(s);
        assert.ok(m, s);
        const name = m[1]!;
        const keys = [...m[2]!.matchAll(/([a-zA-Z_]+)=/g)].map((x) => x[1]!);
        if (name === 'up') continue;
        const fam = familyOf(name);
        assert.ok(fam, `${name} (in the rules' test) is not served by ferryd`);
        const real = fam.samples.find((x) => x.name === name);
        assert.ok(real, `${name}: ferryd served no sample to compare labels with`);
        const allowed = new Set([...Object.keys(real.labels), 'instance', 'job']);
        for (const k of keys) assert.ok(allowed.has(k), `${s}: ferryd has no label ${k} on ${name} (it has ${Object.keys(real.labels).join(', ')})`);
        for (const k of Object.keys(real.labels)) assert.ok(keys.includes(k), `${s}: ferryd labels ${name} with ${k} too`);
      }
    });

    it('the Grafana dashboard: the panels asked for, on names ferryd serves', async () => {
      const { dash, exprs } = await dashboardExprs();
      assert.equal(dash.uid, 'ferry-overview');
      const titles = dash.panels.map((p) => p.title);
      for (const want of ['Pool space used and free', 'Volumes by pool', 'Backup age per volume', 'Plugin call latency p99', 'Jobs by kind and result', 'Volumes never backed up', 'Backups failing']) assert.ok(titles.includes(want), `no panel ${want}`);
      const names = servedNames();
      const used = new Set(exprs.flatMap(metricNames));
      for (const n of used) assert.ok(names.has(n), `the dashboard reads ${n}, which ferryd does not serve`);
      // every ferry family but the per-volume trash and measurement times appears on the dashboard
      for (const n of ['ferry_pool_used_bytes', 'ferry_pool_free_bytes', 'ferry_volumes', 'ferry_volume_last_backup_timestamp_seconds', 'ferry_plugin_call_duration_seconds_bucket', 'ferry_jobs_total', 'ferry_build_info']) assert.ok(used.has(n), `the dashboard does not show ${n}`);
    });

    it('promtool: the rules parse, their unit test fires each alert, every dashboard query parses', async (t) => {
      const which = await sh('sh', ['-c', 'command -v promtool']);
      const skip = skipUnless(which.code === 0 ? [] : ['promtool (Debian package prometheus)'], 'promtool checks of contrib/prometheus');
      if (skip) return t.skip(skip);
      const check = await sh('promtool', ['check', 'rules', rulesFile]);
      assert.equal(check.code, 0, check.out);
      assert.match(check.out, /SUCCESS: 7 rules found/);
      const unit = await sh('promtool', ['test', 'rules', 'ferry-alerts.test.yml'], join(ROOT, 'contrib', 'prometheus'));
      assert.equal(unit.code, 0, unit.out);
      assert.match(unit.out, /SUCCESS/);
      // each alert is expected to fire in the unit test at least once
      const tested = parseYaml(await readFile(rulesTest, 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
      const fired = new Set(tested.tests.flatMap((x) => x.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
      assert.deepEqual([...fired].sort(), (await rules()).groups.flatMap((g) => g.rules.map((r) => r.alert!)).sort());
      // the dashboard's queries, with Grafana's variables filled in, as recording rules: promtool parses them
      const { exprs } = await dashboardExprs();
      const queries = exprs.filter((e) => !e.startsWith('label_values(')).map((e) => e.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*'));
      const dir = await mkdtemp(join(tmpdir(), 'ferry-promql-'));
      try {
        const file = join(dir, 'dashboard-queries.yml');
        await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: queries.map((expr, i) => ({ record: `ferry_dashboard:query_${i}`, expr })) }] }));
        const q = await sh('promtool', ['check', 'rules', file]);
        assert.equal(q.code, 0, q.out);
        assert.match(q.out, new RegExp(`SUCCESS: ${queries.length} rules found`));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
