/**
 * Builds a snapshot tree by copying (reflink pools) or, on filesystems without snapshots or reflinks
 * (ext4, NFS), incrementally: a worker thread, so that tens of thousands of synchronous stat/link calls
 * never stall ferryd's event loop.
 *
 * Unchanged regular files and symlinks are hard-linked from the previous snapshot (snapshots share
 * immutable inodes with each other, never with the live data); changed ones and special files are copied by
 * `cp -a` (modes, owners, times, xattrs, sparse files); hard links inside the volume stay hard links;
 * directories get their modes, owners and times last.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lstatSync, readdirSync, mkdirSync, linkSync, chownSync, chmodSync, utimesSync, writeFileSync, existsSync, type BigIntStats } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Manifest } from './manifest.js';

export interface LinkJob {
  /** `always` for reflink pools (fail rather than copy data), `auto` elsewhere. */
  reflink: 'always' | 'auto';
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

  // The volume may be in use: entries can vanish between readdir and lstat (crash-consistent, not paused).
  const walk = (rel: string) => {
    const abs = rel ? join(job.live, rel) : job.live;
    let st: BigIntStats;
    try {
      st = lstatSync(abs, { bigint: true });
    } catch (err) {
      if (rel && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (st.isDirectory()) {
      dirs.push([rel, st]);
      let names: string[] = [];
      try {
        names = readdirSync(abs);
      } catch (err) {
        if (!rel || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      for (const name of names) walk(rel ? `${rel}/${name}` : name);
      return;
    }
    files++;
    if (st.isFile() || st.isSymbolicLink()) {
      const ctime = st.ctimeNs.toString();
      manifest[rel] = [Number(st.ino), ctime, Number(st.size)];
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
      if (prev && job.prevTree && prev[0] === Number(st.ino) && prev[1] === ctime && prev[2] === Number(st.size)) {
        reuse.push(rel);
        return;
      }
      if (st.isFile()) copiedBytes += Number(st.size);
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
  const vanished = new Set<string>();
  // cp -a, in batches that fit on a command line, relative to the live root (--parents keeps paths).
  const cp = (files: string[]) =>
    execFileSync('cp', ['-a', `--reflink=${job.reflink}`, '--parents', '-t', job.dest, '--', ...files], { cwd: job.live, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
  for (let i = 0; i < toCopy.length; ) {
    const batch: string[] = [];
    let len = 0;
    while (i < toCopy.length && len < 100_000) {
      batch.push(toCopy[i]!);
      len += toCopy[i]!.length + 1;
      i++;
    }
    try {
      cp(batch);
    } catch {
      // Something in the batch changed under us: copy one by one, skipping what was deleted meanwhile
      // and retrying what was replaced while being copied.
      for (const rel of batch) copyOne(rel, cp);
    }
  }
  function copyOne(rel: string, copy: (files: string[]) => void): void {
    for (let attempt = 0; ; attempt++) {
      try {
        copy([rel]);
        return;
      } catch (err) {
        try {
          lstatSync(join(job.live, rel));
        } catch {
          vanished.add(rel);
          delete manifest[rel];
          return;
        }
        if (attempt >= 4) throw err;
      }
    }
  }
  for (const [first, other] of laterLinks) {
    if (vanished.has(first)) continue;
    try {
      linkSync(join(job.dest, first), join(job.dest, other));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  // directories last, deepest first, so that adding entries does not change their times again
  for (const [rel, st] of dirs.reverse()) {
    const p = rel ? join(job.dest, rel) : job.dest;
    if (rel && !existsSync(p)) continue;
    chownSync(p, Number(st.uid), Number(st.gid));
    chmodSync(p, Number(st.mode) & 0o7777);
    utimesSync(p, Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9);
  }
  writeFileSync(job.manifestOut, JSON.stringify(manifest));
  return { files, linked, copied: toCopy.length - vanished.size, copiedBytes };
}

if (parentPort) {
  try {
    parentPort.postMessage({ ok: true, result: run(workerData as LinkJob) });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
}
