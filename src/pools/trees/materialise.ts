/** A whole tree of a snapshot at a new place: copies (restores and clones) or hard links (a read-only view). */
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync } from 'node:fs';
import { holderOf } from './manifest.js';
import { readManifestSync } from './manifest-file.js';
import { cpBatches, cpParents, setDirMeta } from './copy.js';
import type { MaterialiseJob } from './jobs.js';

export function materialise(job: MaterialiseJob): void {
  const m = readManifestSync(job.snaps, job.id);
  const tree = `${job.snaps}/${job.id}`;
  if (!m || m.layout === 'full') {
    if (job.mode === 'link') throw new Error(`snapshot ${job.id} is a complete tree: read it in place`);
    mkdirSync(job.dest);
    execFileSync('cp', ['-a', `--reflink=${job.reflink}`, '--', `${tree}/.`, `${job.dest}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
    return;
  }
  mkdirSync(job.dest);
  for (const [rel] of m.dirs) if (rel) mkdirSync(`${job.dest}/${rel}`);
  if (job.mode === 'link') {
    for (const e of m.files) linkSync(`${job.snaps}/${holderOf(e, job.id)}/${e[0]}`, `${job.dest}/${e[0]}`);
  } else {
    const byHolder = new Map<string, string[]>();
    for (const e of m.files) {
      const h = holderOf(e, job.id);
      let list = byHolder.get(h);
      if (!list) byHolder.set(h, (list = []));
      list.push(e[0]);
    }
    for (const [h, rels] of byHolder) {
      cpBatches(rels, `${job.snaps}/${h}`, job.dest, job.reflink, (batch) => {
        // report the first path that cannot be copied, with cp's own words
        for (const rel of batch) {
          try {
            cpParents([rel], `${job.snaps}/${h}`, job.dest, job.reflink);
          } catch (err) {
            const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
            throw new Error(`cannot copy ${rel} of snapshot ${job.id} (held by snapshot ${h}): ${why}`);
          }
        }
      });
    }
  }
  for (const [first, other] of m.links) linkSync(`${job.dest}/${first}`, `${job.dest}/${other}`);
  setDirMeta(job.dest, m.dirs);
}
