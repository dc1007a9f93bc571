/** Which directory is a shared volume's live data: noted after a restore swaps it, checked before a node uses it (another node's cache may still name the old one). */
import { stat } from 'node:fs/promises';
import { writeJsonAtomic } from '../util/atomic.js';
import { FerryError } from '../util/errors.js';

/**
 * `data-id.json` in a shared volume's directory. A restore swaps the live data by renames (data → data.old,
 * data.new → data); another node's filesystem client may keep its cached name `data` for a while (GlusterFS's
 * FUSE client: every time, up to its 1 s entry timeout; NFS: up to the attribute cache time) and so reach the
 * old directory, which the restoring node is deleting: a container started there would read the old data,
 * half deleted, and its writes would vanish with it. The restoring node notes the inode number of the new
 * directory here (inode numbers of the share are the same on every client); a node about to use the data checks
 * the number it sees against it.
 */
export const DATA_ID = 'data-id.json';

export interface DataId {
  /** The inode number of the live data directory, in decimal (64 bits: beyond a JavaScript number). */
  ino: string;
  /** The node that made it the live data, and when (ISO 8601). */
  node: string;
  at: string;
}

/** The inode number of `path` in decimal, exactly (a GlusterFS inode number needs all 64 bits; Node gives them signed). */
export async function inoOf(path: string): Promise<string> {
  return String(BigInt.asUintN(64, (await stat(path, { bigint: true })).ino));
}

/** Note `data` as the live data of the volume whose directory is `root` (after a swap, on the share itself). */
export async function writeDataId(root: string, data: string, node: string, now = Date.now()): Promise<void> {
  const id: DataId = { ino: await inoOf(data), node, at: new Date(now).toISOString() };
  await writeJsonAtomic(`${root}/${DATA_ID}`, id);
}

/** The note in `text`, or undefined when there is none or it is not one (then nothing is checked). */
export function parseDataId(text: string | undefined): DataId | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<DataId>;
    return v && typeof v.ino === 'string' && /^\d+$/.test(v.ino) ? { ino: v.ino, node: String(v.node ?? 'another node'), at: String(v.at ?? '') } : undefined;
  } catch {
    return undefined;
  }
}

/** The share's calls the check makes (a shared pool's child process, with its deadline). */
export interface DataIdFs {
  /** The file's text, or undefined when it is not there. */
  readText(path: string): Promise<string | undefined>;
  ino(path: string): Promise<string>;
  /** Lists a directory: on a FUSE share the answer renews this node's cached names in it (READDIRPLUS). */
  readdir(path: string): Promise<unknown>;
}

/** How long a node waits for its view of a restored volume's data to catch up, and between looks. */
export const FRESH_WAIT_MS = 10_000;
const FRESH_STEP_MS = 200;

/**
 * Make sure `data` (the live data of the volume `volume`, in directory `root`) leads this node to the directory a
 * restore made, not to the one it replaced: list `root` first (on FUSE that renews this node's cached names in it,
 * the note's included: GlusterFS's client answers a read of a file whose cached name is stale from its own cache,
 * old note and all), then compare the inode numbers; while they differ, list and look again, for up to `waitMs`;
 * then refuse. No note (a volume never restored since this check exists): nothing to compare, nothing done.
 */
export async function ensureFreshData(fs: DataIdFs, volume: string, root: string, data: string, waitMs = FRESH_WAIT_MS): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let round = 0; ; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, FRESH_STEP_MS));
    await fs.readdir(root);
    const [want, have] = await Promise.all([fs.readText(`${root}/${DATA_ID}`).then(parseDataId), fs.ino(data)]);
    if (!want || want.ino === have) return;
    if (Date.now() >= deadline) {
      throw new FerryError(
        'unavailable',
        `volume ${volume}: this node still sees the data it had before a restore on ${want.node}${want.at ? ` at ${want.at}` : ''} (${data} is inode ${have} here, the restore made inode ${want.ino}); the share's cache on this node has not caught up after ${Math.round(waitMs / 1000)} s, so the volume is not used here: try again, and mount the share with a short attribute cache (NFS: actimeo=3 or less)`,
      );
    }
  }
}
