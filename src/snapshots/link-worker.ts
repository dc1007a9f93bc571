/**
 * Builds an incremental snapshot tree on filesystems without snapshots or reflinks (ext4, NFS): a worker
 * thread so that tens of thousands of synchronous stat/link calls never stall ferryd's event loop.
 *
 * Unchanged regular files are hard-linked from the previous snapshot (snapshots share immutable files
 * with each other, never with the live data); changed files, symlinks and special files are copied by
 * `cp -a` (modes, owners, times, xattrs, sparse files); hard links inside the volume stay hard links;
 * directories get their modes, owners and times last.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lstatSync, readdirSync, mkdirSync, linkSync, chownSync, chmodSync, utimesSync, writeFileSync, type BigIntStats } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Manifest } from './manifest.js';

export interface LinkJob {
  live: string;
  dest: string;
  prevTree?: string;
  prevManifest?: Manifest;
  manifestOut: string;
}

export interface LinkResult {
  files: number;
  linked: number;
  copied: number;
  copiedBytes: number;
}

function run(job: LinkJob): LinkResult {
  const manifest: Manifest = {};
  const dirs: Array<[string, BigIntStats]> = [];
  const toCopy: string[] = [];
  const reuse: string[] = [];
  const sameInode = new Map<string, string>(); // "dev:ino" -> first rel path
  const laterLinks: Array<[string, string]> = []; // [first, other]
  let files = 0;
  let copiedBytes = 0;

  const walk = (rel: string) => {
    const abs = rel ? join(job.live, rel) : job.live;
    const st = lstatSync(abs, { bigint: true });
    if (st.isDirectory()) {
      dirs.push([rel, st]);
      for (const name of readdirSync(abs)) walk(rel ? `${rel}/${name}` : name);
      return;
    }
    files++;
    if (st.isFile()) {
      manifest[rel] = [Number(st.ino), st.ctimeNs.toString(), Number(st.size)];
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = sameInode.get(key);
        if (first !== undefined) {
          laterLinks.push([first, rel]);
          return;
        }
        sameInode.set(key, rel);
      }
      const prev = job.prevManifest?.[rel];
      if (prev && job.prevTree && prev[0] === Number(st.ino) && prev[1] === st.ctimeNs.toString() && prev[2] === Number(st.size)) {
        reuse.push(rel);
        return;
      }
      copiedBytes += Number(st.size);
    }
    toCopy.push(rel);
  };
  walk('');

  for (const [rel] of dirs) mkdirSync(rel ? join(job.dest, rel) : job.dest, { recursive: true });
  let linked = 0;
  for (const rel of reuse) {
    try {
      linkSync(join(job.prevTree!, rel), join(job.dest, rel));
      linked++;
    } catch {
      toCopy.push(rel); // the previous copy is gone or unusable: copy instead
    }
  }
  // cp -a, in batches that fit on a command line, relative to the live root (--parents keeps paths).
  for (let i = 0; i < toCopy.length; ) {
    const batch: string[] = [];
    let len = 0;
    while (i < toCopy.length && len < 100_000) {
      batch.push(toCopy[i]!);
      len += toCopy[i]!.length + 1;
      i++;
    }
    execFileSync('cp', ['-a', '--reflink=auto', '--parents', '-t', job.dest, '--', ...batch], { cwd: job.live, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
  }
  for (const [first, other] of laterLinks) linkSync(join(job.dest, first), join(job.dest, other));
  // directories last, deepest first, so that adding entries does not change their times again
  for (const [rel, st] of dirs.reverse()) {
    const p = rel ? join(job.dest, rel) : job.dest;
    chownSync(p, Number(st.uid), Number(st.gid));
    chmodSync(p, Number(st.mode) & 0o7777);
    utimesSync(p, Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9);
  }
  writeFileSync(job.manifestOut, JSON.stringify(manifest));
  return { files, linked, copied: toCopy.length, copiedBytes };
}

if (parentPort) {
  try {
    parentPort.postMessage({ ok: true, result: run(workerData as LinkJob) });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
}
