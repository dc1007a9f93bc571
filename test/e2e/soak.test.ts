/**
 * The CI soak (issue 12 item 5): about three minutes of tools/soak-driver.ts — three hosts on one
 * GlusterFS pool plus local pools, random user operations through docker and ferry, ferryds killed -9
 * and dockerds restarted — failing on any invariant violation (tools/soak-invariants.ts). Calls that
 * fail because a ferryd or dockerd is down are expected and only counted. The seed is printed; replay
 * with FERRY_SOAK_SEED=N (and FERRY_SOAK_MINUTES=M for a longer run). `npm run soak` is the long form.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dockerHostPrerequisites } from '../helpers/dockerhost.js';
import { clusterPrerequisites } from '../helpers/cluster.js';
import { glusterPrerequisites } from '../helpers/gluster.js';
import { skipUnless, isRoot } from '../helpers/prereq.js';
import { readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatSummary, runSoak } from '../../tools/soak-driver.js';

const skip = skipUnless(
  [...(isRoot() ? [] : ['root']), ...dockerHostPrerequisites().missing, ...clusterPrerequisites(), ...glusterPrerequisites()],
  'the soak (three hosts on GlusterFS)',
);

describe('soak: random user operations on three hosts with faults', { skip, timeout: 1_800_000 }, () => {
  it('keeps every invariant (data = checksum log, catalog = directories, refcounts = containers, trash, snapshots)', async (t) => {
    const minutes = Number(process.env.FERRY_SOAK_MINUTES ?? 3);
    const seed = process.env.FERRY_SOAK_SEED !== undefined ? Number(process.env.FERRY_SOAK_SEED) : undefined;
    const s = await runSoak({ minutes, faultEverySec: 30, ...(seed !== undefined ? { seed } : {}), log: (l) => t.diagnostic(l) });
    const text = formatSummary(s);
    console.log(text);
    t.diagnostic(text);
    const total = Object.values(s.ops).reduce((a, x) => a + x.ok, 0);
    assert.ok(total > 0, 'operations succeeded');
    assert.ok(Object.values(s.faults).reduce((a, n) => a + n, 0) > 0, 'faults were injected');
    assert.deepEqual(s.violations, [], `invariant violations (seed ${s.seed}; replay with FERRY_SOAK_SEED=${s.seed})`);
    // a passing run leaves nothing behind; a failing one keeps its log and model for the replay
    const dir = dirname(s.logFile);
    for (const f of await readdir(dir)) if (f.startsWith(`ferry-soak-${s.seed}`)) await rm(join(dir, f), { force: true });
  });
});
