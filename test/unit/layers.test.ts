// The layer order of src/ (.dependency-cruiser.cjs): no import runs upward or sideways, and no import cycle.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
  cycle?: Array<{ name: string }>;
}

describe('architecture', () => {
  it('every import of src/ follows the layer order, and no file imports back one that imports it', () => {
    const r = spawnSync(join(root, 'node_modules/.bin/depcruise'), ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.ok(r.stdout, `depcruise printed nothing: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { summary: { violations: Violation[]; totalCruised: number } };
    assert.ok(out.summary.totalCruised > 100, `only ${out.summary.totalCruised} modules cruised: is the config right?`);
    const shown = out.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (cycle: ${v.cycle.map((c) => c.name).join(' → ')})` : ''}`);
    assert.deepEqual(shown, []);
  });
});
