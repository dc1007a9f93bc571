/**
 * A tree snapshot's progress reports (build.ts, run here in-process): phases in order, copy counts that only
 * grow to the totals, each phase's last state passed on, and nothing reported once the build has returned
 * (a held-back copy report arriving after the job's next phase would move its progress backwards).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '../../src/pools/trees/build.js';
import type { TreeProgress } from '../../src/pools/trees/jobs.js';

const FILES = 400;

describe('tree snapshot progress', () => {
  let base: string;
  let live: string;
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'ferry-build-progress-'));
    live = join(base, 'live');
    for (let d = 0; d < 8; d++) {
      mkdirSync(join(live, `d${d}`), { recursive: true });
      for (let f = 0; f < FILES / 8; f++) writeFileSync(join(live, `d${d}`, `f${f}`), `file ${d}/${f}\n`.repeat(50));
    }
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  for (const layout of ['delta', 'full'] as const) {
    it(`${layout} layout: scan then copy, counts that grow to the totals, nothing after the build returns`, async () => {
      const seen: Array<TreeProgress & { at: number }> = [];
      const id = `snap-${layout}`;
      const dest = join(base, 'snaps', id);
      mkdirSync(join(base, 'snaps'), { recursive: true }); // (the build makes `dest`)
      const result = await build({ op: 'build', id, layout, reflink: 'auto', live, dest, manifestOut: join(base, `${id}.manifest.json`) }, (p) => seen.push({ ...p, at: performance.now() }));
      const returned = performance.now();
      assert.equal(result.copied, FILES);
      assert.equal(readFileSync(join(dest, 'd3', 'f7'), 'utf8'), 'file 3/7\n'.repeat(50), 'the copy holds the data');

      // a report held back by the throttle would fire within its 100 ms: wait past that
      await new Promise((r) => setTimeout(r, 250));
      assert.ok(seen.every((p) => p.at <= returned), `no report after the build returned: ${JSON.stringify(seen.map((p) => [p.phase, p.filesDone, Math.round(p.at - returned)]))}`);

      const phases = seen.map((p) => p.phase).filter((p, i, a) => p !== a[i - 1]);
      assert.deepEqual(phases, ['scan', 'copy']);
      const scans = seen.filter((p) => p.phase === 'scan');
      assert.equal(scans.at(-1)!.filesDone, FILES, "the scan's last report, however soon it came, counts every file");
      const copies = seen.filter((p) => p.phase === 'copy');
      assert.equal(copies[0]!.filesDone, 0, 'the copy phase starts at 0');
      for (const p of copies) assert.equal(p.filesTotal, FILES);
      for (let i = 1; i < copies.length; i++) assert.ok(copies[i]!.filesDone >= copies[i - 1]!.filesDone, 'files done never goes back');
      assert.equal(copies.at(-1)!.filesDone, FILES, "the copy's last report counts every file");
    });
  }
});
