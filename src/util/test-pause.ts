/** Test hooks: FERRY_TEST_PAUSE=POINT:MS[,POINT:MS...] makes ferryd wait at named points of a race, FERRY_TEST_FAULT=POINT[,...] fail there (docs/testing.md). */
import { appendFileSync } from 'node:fs';

let pauses: Map<string, number> | undefined;

function parse(spec: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of (spec ?? '').split(',').filter(Boolean)) {
    const m = /^([a-z-]+):(\d+)$/.exec(part.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Wait as long as FERRY_TEST_PAUSE says for `point` (not at all when it does not name it, as in production). */
export async function pauseAt(point: string): Promise<void> {
  pauses ??= parse(process.env.FERRY_TEST_PAUSE);
  const ms = pauses.get(point);
  if (!ms) return;
  // FERRY_TEST_PAUSE_FILE: say where we wait, so that a test can act (e.g. kill -9) while we do
  if (process.env.FERRY_TEST_PAUSE_FILE) appendFileSync(process.env.FERRY_TEST_PAUSE_FILE, `${point}\n`);
  await new Promise((r) => setTimeout(r, ms));
}

let faults: Set<string> | undefined;

/** Test hook: FERRY_TEST_FAULT=POINT[,POINT...] makes ferryd fail at named points as a late or failing share would (docs/testing.md). */
export function faultAt(point: string): void {
  faults ??= new Set((process.env.FERRY_TEST_FAULT ?? '').split(',').map((p) => p.trim()).filter(Boolean));
  if (faults.has(point)) throw new Error(`simulated fault at ${point} (FERRY_TEST_FAULT)`);
}
