/** A whole tree of a snapshot at a new place: copies (restores and clones) or hard links (a read-only view). */
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync } from 'node:fs';
import { holderOf } from './manifest.js';
import { readManifestSync } from './manifest-file.js';
import { copyFromSnapshot, setDirMeta } from './copy.js';
import type { MaterialiseJob } from './jobs.js';

export async function materialise(job: MaterialiseJob): Promise<void> {
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
    // every directory is made above, so the two `cp` of each holder's files never make one
    for (const [h, rels] of byHolder) await copyFromSnapshot(job.snaps, job.id, h, rels, job.dest, job.reflink);
  }
  for (const [first, other] of m.links) linkSync(`${job.dest}/${first}`, `${job.dest}/${other}`);
  setDirMeta(job.dest, m.dirs);
}
