/**
 * The file work of snapshots on pools without filesystem snapshots (hard-link pools: ext4, NFS; reflink
 * pools: xfs), in a worker thread so that tens of thousands of synchronous stat/link/mkdir calls never
 * stall ferryd's event loop. Three jobs (see manifest.ts for the two layouts):
 * - `build`: a snapshot of the live tree. Unchanged entries (same inode, ctime and size as the previous
 *   snapshot recorded) are referenced (delta) or hard-linked (full) from the snapshot holding their copy;
 *   the rest is copied by `cp -a` (modes, owners, times, xattrs, sparse files).
 * - `materialise`: a whole tree of a snapshot: copies (restores and clones: the live data never shares an
 *   inode with a snapshot) or hard links (a read-only view for backups).
 * - `relocate`: before a delta snapshot is deleted, what later snapshots still reference in it is
 *   hard-linked into the oldest of them, and their manifests are rewritten to say so.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lstatSync, readdirSync, mkdirSync, linkSync, unlinkSync, chownSync, chmodSync, utimesSync, writeFileSync, readFileSync, existsSync, openSync, fsyncSync, closeSync, renameSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { holderOf, parseManifest, type DirEntry, type FileEntry, type Manifest } from './manifest.js';

export type Reflink = 'always' | 'auto';

export interface BuildJob {
  op: 'build';
  layout: Manifest['layout'];
  /** `always` for reflink pools (fail rather than copy data), `auto` elsewhere. */
  reflink: Reflink;
  live: string;
  dest: string;
  manifestOut: string;
  /** The snapshots directory and the previous snapshot's id, if it has a manifest. */
  prev?: { snaps: string; id: string };
}
export interface BuildResult {
  files: number;
  linked: number;
  copied: number;
  copiedBytes: number;
}

export interface MaterialiseJob {
  op: 'materialise';
  snaps: string;
  id: string;
  dest: string;
  mode: 'copy' | 'link';
  reflink: Reflink;
}

export interface RelocateJob {
  op: 'relocate';
  snaps: string;
  id: string;
  /** The snapshots made after `id`, oldest first (only they can reference it). */
  later: string[];
}
export interface RelocateResult {
  moved: number;
  rewritten: number;
}

export type TreeJob = BuildJob | MaterialiseJob | RelocateJob;

const manifestPath = (snaps: string, id: string) => `${snaps}/${id}.manifest.json`;

/** The manifest of snapshot `id`, or undefined for a snapshot without one (btrfs; a complete tree). */
export function readManifestSync(snaps: string, id: string): Manifest | undefined {
  let text: string;
  try {
    text = readFileSync(manifestPath(snaps, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseManifest(text);
}

function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const d = openSync(dirname(path), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

/** `cp -a` of paths relative to `cwd` into `dest` (keeping them relative), in batches that fit a command line. */
function cpBatches(rels: string[], cwd: string, dest: string, reflink: Reflink, onFailure: (batch: string[]) => void): void {
  for (let i = 0; i < rels.length; ) {
    const batch: string[] = [];
    let len = 0;
    while (i < rels.length && len < 100_000) {
      batch.push(rels[i]!);
      len += rels[i]!.length + 1;
      i++;
    }
    try {
      cpParents(batch, cwd, dest, reflink);
    } catch {
      onFailure(batch);
    }
  }
}
function cpParents(rels: string[], cwd: string, dest: string, reflink: Reflink): void {
  execFileSync('cp', ['-a', `--reflink=${reflink}`, '--parents', '-t', dest, '--', ...rels], { cwd, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
}

function setDirMeta(dest: string, dirs: DirEntry[]): void {
  // deepest first, after everything inside was made, so that adding entries does not change their times again
  for (let i = dirs.length - 1; i >= 0; i--) {
    const [rel, mode, uid, gid, atimeNs, mtimeNs] = dirs[i]!;
    const p = rel ? `${dest}/${rel}` : dest;
    if (rel && !existsSync(p)) continue;
    chownSync(p, uid, gid);
    chmodSync(p, mode & 0o7777);
    utimesSync(p, Number(atimeNs) / 1e9, Number(mtimeNs) / 1e9);
  }
}

// ---- build ----------------------------------------------------------------------------------------

function build(job: BuildJob): BuildResult {
  const prevFiles = new Map<string, FileEntry>();
  if (job.prev) {
    const pm = readManifestSync(job.prev.snaps, job.prev.id);
    for (const e of pm?.files ?? []) prevFiles.set(e[0], [e[0], e[1], e[2], e[3], holderOf(e, job.prev.id)]);
  }
  const delta = job.layout === 'delta';
  const dirs: DirEntry[] = [];
  const files: FileEntry[] = [];
  const links: Array<[string, string]> = [];
  const toCopy: number[] = []; // indexes into files
  const reuse: number[] = [];
  const sameInode = new Map<string, string>(); // "dev:ino" -> first rel path
  let copiedBytes = 0;

  // The volume may be in use: entries can vanish between readdir and lstat (crash-consistent, not paused).
  const walk = (rel: string) => {
    const abs = rel ? `${job.live}/${rel}` : job.live;
    const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
    if (!st) {
      if (rel) return;
      throw new Error(`${abs} does not exist`);
    }
    if (st.isDirectory()) {
      dirs.push([rel, Number(st.mode), Number(st.uid), Number(st.gid), st.atimeNs.toString(), st.mtimeNs.toString()]);
      let names: string[] = [];
      try {
        names = readdirSync(abs);
      } catch (err) {
        if (!rel || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      for (const name of names) walk(rel ? `${rel}/${name}` : name);
      return;
    }
    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = sameInode.get(key);
      if (first !== undefined) {
        links.push([first, rel]);
        return;
      }
      sameInode.set(key, rel);
    }
    const ino = Number(st.ino);
    const ctime = st.ctimeNs.toString();
    const size = Number(st.size);
    const prev = prevFiles.get(rel);
    if (prev && prev[1] === ino && prev[2] === ctime && prev[3] === size) {
      reuse.push(files.length);
      files.push([rel, ino, ctime, size, delta ? prev[4] : '']);
      return;
    }
    if (st.isFile()) copiedBytes += size;
    toCopy.push(files.length);
    files.push([rel, ino, ctime, size, '']);
  };
  walk('');

  const vanished = new Set<string>();
  if (delta) {
    mkdirSync(job.dest);
  } else {
    for (const [rel] of dirs) mkdirSync(rel ? `${job.dest}/${rel}` : job.dest, { recursive: true });
    for (const i of reuse) {
      const e = files[i]!;
      try {
        linkSync(`${job.prev!.snaps}/${prevFiles.get(e[0])![4]}/${e[0]}`, `${job.dest}/${e[0]}`);
      } catch {
        toCopy.push(i); // the previous copy is gone or unusable: copy instead
      }
    }
  }
  const copyOne = (rel: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        cpParents([rel], job.live, job.dest, job.reflink);
        return;
      } catch (err) {
        if (!lstatSync(`${job.live}/${rel}`, { throwIfNoEntry: false })) {
          vanished.add(rel); // deleted meanwhile
          return;
        }
        if (attempt >= 4) throw err; // replaced while being copied: retry, a few times
      }
    }
  };
  // Something in a batch changed under us: copy one by one, skipping what was deleted meanwhile.
  cpBatches(toCopy.map((i) => files[i]![0]), job.live, job.dest, job.reflink, (batch) => batch.forEach(copyOne));

  const keptFiles = vanished.size ? files.filter((e) => !vanished.has(e[0])) : files;
  const keptLinks = vanished.size ? links.filter(([first]) => !vanished.has(first)) : links;
  if (!delta) {
    for (const [first, other] of keptLinks) {
      try {
        linkSync(`${job.dest}/${first}`, `${job.dest}/${other}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    setDirMeta(job.dest, dirs);
  }
  const manifest: Manifest = { v: 2, layout: job.layout, dirs, files: keptFiles, links: keptLinks };
  writeFileSync(job.manifestOut, JSON.stringify(manifest));
  return { files: keptFiles.length + keptLinks.length, linked: reuse.length, copied: toCopy.length - vanished.size, copiedBytes };
}

// ---- materialise ----------------------------------------------------------------------------------

function materialise(job: MaterialiseJob): void {
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

// ---- relocate -------------------------------------------------------------------------------------

function relocate(job: RelocateJob): RelocateResult {
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

if (parentPort) {
  try {
    const job = workerData as TreeJob;
    const result = job.op === 'build' ? build(job) : job.op === 'materialise' ? materialise(job) : relocate(job);
    parentPort.postMessage({ ok: true, result });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
}
