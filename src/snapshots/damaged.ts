/** Snapshot records and manifests that cannot be read: moved aside, records rebuilt, trees never deleted for it. */
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic.js';
import { FerryError, isErrno } from '../util/errors.js';
import { CORRUPT_MARK, type Quarantine } from '../util/quarantine.js';
import type { SnapshotRecord } from './record.js';

const SNAPSHOT_ID = /^[0-9a-f]{12}$/;

/** What a rebuilt record needs to know of the volume. */
export interface VolumeFacts {
  volume: string;
  volumeCreatedAt: string;
  node: string;
  method: string;
}

/** Is `r` a snapshot record of `id`? (anything else in its file is as bad as garbage) */
export function validRecord(id: string, r: unknown): r is SnapshotRecord {
  const s = r as Partial<SnapshotRecord> | null;
  return typeof s === 'object' && s !== null && s.id === id && typeof s.name === 'string' && typeof s.createdAt === 'string' && typeof s.kind === 'string' && typeof s.method === 'string';
}

export function hasAside(entries: string[], file: string): boolean {
  return entries.some((e) => e.startsWith(`${file}${CORRUPT_MARK}`));
}

/**
 * The record of a snapshot whose own record file could not be read: its tree is whole (a record is written
 * only after the tree), so it is listed again as `recovered-ID`, made when its manifest (or tree) was.
 */
export async function rebuildRecord(snaps: string, id: string, v: VolumeFacts): Promise<SnapshotRecord> {
  const made = await stat(join(snaps, `${id}.manifest.json`)).catch(() => stat(join(snaps, id)));
  const rec: SnapshotRecord = {
    id,
    volume: v.volume,
    volumeCreatedAt: v.volumeCreatedAt,
    name: `recovered-${id}`,
    kind: 'snapshot',
    createdAt: made.mtime.toISOString(),
    node: v.node,
    method: v.method,
    origin: 'manual',
    consistency: 'crash',
    durationMs: 0,
    stats: {},
  };
  await writeJsonAtomic(join(snaps, `${id}.json`), rec);
  return rec;
}

/** A record file that failed to parse: move it aside and list the snapshot again under a rebuilt record. */
export async function replaceBadRecord(q: Quarantine, snaps: string, id: string, why: unknown, v: VolumeFacts): Promise<SnapshotRecord | undefined> {
  if (!SNAPSHOT_ID.test(id) || !(await stat(join(snaps, id)).then((s) => s.isDirectory(), () => false))) {
    await q.moveAside(join(snaps, `${id}.json`), why, `No snapshot tree ${id} of volume ${v.volume} goes with it: nothing is listed for it.`);
    return undefined;
  }
  const aside = await q.moveAside(
    join(snaps, `${id}.json`),
    why,
    `Snapshot ${id} of volume ${v.volume} is listed again as recovered-${id} (its name, kind, message and branch are lost); its tree is untouched.`,
  );
  if (aside === undefined) return undefined; // another call moved it and rebuilds it
  return rebuildRecord(snaps, id, v);
}

/**
 * A cheap look at a manifest (it is read whole only when used): written by JSON.stringify, a whole one
 * starts with `{` and ends with `}`. A manifest that fails is moved aside.
 * Returns false when the snapshot has no usable manifest because one was moved aside (now or before).
 */
export async function checkManifest(q: Quarantine | undefined, snaps: string, id: string, volume: string): Promise<boolean> {
  const file = join(snaps, `${id}.manifest.json`);
  let problem: string | undefined;
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const head = Buffer.alloc(Math.min(size, 8));
      const tail = Buffer.alloc(Math.min(size, 8));
      await fh.read(head, 0, head.length, 0);
      await fh.read(tail, 0, tail.length, Math.max(0, size - tail.length));
      if (size < 2 || head.toString('latin1').trimStart()[0] !== '{' || tail.toString('latin1').trimEnd().at(-1) !== '}') problem = `not a whole manifest (${size} bytes)`;
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    return !hasAside(await readdir(snaps).catch(() => []), `${id}.manifest.json`);
  }
  if (!problem) return true;
  if (!q) throw new FerryError('corrupt', `manifest ${file} of snapshot ${id} of volume ${volume} is damaged: ${problem}`);
  await q.moveAside(
    file,
    problem,
    `Snapshot ${id} of volume ${volume} cannot be restored, cloned or backed up (its tree may hold only what changed); removing it is safe and keeps what later snapshots need. The next snapshot of the volume may copy every file again.`,
  );
  return false;
}

/** Refuse to read a snapshot whose manifest was moved aside: its tree alone may be a partial view. */
export async function requireManifest(q: Quarantine | undefined, snaps: string, id: string, volume: string): Promise<void> {
  if (await checkManifest(q, snaps, id, volume)) return;
  throw new FerryError('corrupt', `the manifest of snapshot ${id} of volume ${volume} could not be read and was moved aside (see \`ferry status\`); this snapshot cannot be restored, cloned or backed up: use another one`);
}
