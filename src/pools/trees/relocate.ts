/** Before a delta snapshot is deleted: what later snapshots reference in it is hard-linked into the oldest of them, and their manifests rewritten. */
import { execFileSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { holderOf, type Manifest } from './manifest.js';
import { manifestPath, readManifestSync, writeAtomicSync } from './manifest-file.js';
import type { RelocateJob, RelocateResult } from './jobs.js';

export function relocate(job: RelocateJob): RelocateResult {
  const later: Array<[string, Manifest]> = [];
  for (const id of job.later) {
    const m = readManifestSync(job.snaps, id);
    if (m?.layout === 'delta') later.push([id, m]);
  }
  // every reference to (job.id, rel) is to the same file: its new holder is the oldest snapshot using it
  const newHolder = new Map<string, string>();
  for (const [id, m] of later) for (const e of m.files) if (holderOf(e, id) === job.id && !newHolder.has(e[0])) newHolder.set(e[0], id);
  for (const [rel, h] of newHolder) {
    const from = `${job.snaps}/${job.id}/${rel}`;
    const to = `${job.snaps}/${h}/${rel}`;
    mkdirSync(dirname(to), { recursive: true });
    try {
      linkSync(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // left by an interrupted relocation: it is this very file, or something to replace
      if (lstatSync(from).ino !== lstatSync(to).ino) {
        unlinkSync(to);
        linkSync(from, to);
      }
    }
  }
  if (newHolder.size) execFileSync('sync', ['-f', job.snaps]);
  let rewritten = 0;
  for (const [id, m] of later) {
    let changed = false;
    for (const e of m.files) {
      if (holderOf(e, id) !== job.id) continue;
      const h = newHolder.get(e[0])!;
      e[4] = h === id ? '' : h;
      changed = true;
    }
    if (changed) {
      writeAtomicSync(manifestPath(job.snaps, id), JSON.stringify(m));
      rewritten++;
    }
  }
  return { moved: newHolder.size, rewritten };
}
