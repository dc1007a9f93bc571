// The per-volume series written as text: byte for byte what prom-client's labelled gauges write for the same volumes, values and labels (escaping, NaN, infinities, no series for null).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Gauge, Registry } from 'prom-client';
import { volumeSeriesText, type VolumeFamily } from '../../src/api/volume-series.js';
import type { VolumeInfo } from '../../src/volumes/listing.js';
import type { VolumeUsage } from '../../src/wire/types.js';

describe('volumeSeriesText', () => {
  it('writes what prom-client writes for the same series', async () => {
    const vol = (name: string, pool: string, createdAt: string) => ({ name, pool, createdAt }) as VolumeInfo;
    const volumes = [vol('db', 'local', '2026-01-02T03:04:05.678Z'), vol('web.data', 'nas "shared"\\x\nline', '2026-12-05T00:00:00.000Z'), vol('empty', 'local', 'not a date')];
    const usage: Record<string, VolumeUsage> = {
      db: { dataBytes: 123456789012, measuredAt: '2026-12-05T01:00:00.000Z', snapshotBytes: 0, snapshots: 2, snapshotNote: 'ok', trashBytes: null },
      'web.data': { dataBytes: null, measuredAt: null, snapshotBytes: Infinity, snapshots: 0, snapshotNote: 'x', trashBytes: null },
      empty: { dataBytes: 0.5, measuredAt: null, snapshotBytes: -Infinity, snapshots: 0, snapshotNote: 'x', trashBytes: null },
    };
    const targets: Record<string, Array<[string, number | undefined]>> = { db: [['nas', 1700000000], ['off "site"', undefined]], empty: [['nas', NaN]] };
    const families: VolumeFamily[] = [
      { name: 'f_created', help: 'When\\ made,\nin s', label: 'pool', series: (v, _u, put) => put(v.pool, Date.parse(v.createdAt) / 1000) },
      { name: 'f_data', help: 'data', label: 'pool', series: (v, u, put) => put(v.pool, u?.dataBytes) },
      { name: 'f_snap', help: 'snap', label: 'pool', series: (v, u, put) => put(v.pool, u?.snapshotBytes) },
      { name: 'f_last', help: 'last', label: 'target', series: (v, _u, put) => { for (const [t, at] of targets[v.name] ?? []) put(t, at); } },
      { name: 'f_none', help: 'nothing', label: 'pool', series: () => undefined },
    ];
    const got = volumeSeriesText(families, volumes, (v) => usage[v.name]!);

    const registry = new Registry();
    for (const f of families) {
      const g = new Gauge({ name: f.name, help: f.help, labelNames: ['volume', f.label], registers: [registry] });
      for (const v of volumes) f.series(v, usage[v.name], (label, value) => {
        if (value !== null && value !== undefined) g.set({ volume: v.name, [f.label]: label }, value);
      });
    }
    const want = await registry.metrics();
    assert.equal(`${got}\n`, want);
    assert.match(got, /f_created\{volume="web.data",pool="nas \\"shared\\"\\\\x\\nline"\} 1796428800/);
    assert.match(got, /f_created\{volume="empty",pool="local"\} Nan/);
  });

  it('writes each family\'s HELP and TYPE when no volume has a series', () => {
    assert.equal(volumeSeriesText([{ name: 'a', help: 'h', label: 'pool', series: () => undefined }], []), '# HELP a h\n# TYPE a gauge');
  });
});
