/** Which directory is a shared volume's live data: noted after a restore swaps it, checked before a node uses it (another node's cache may still name the old one). */
import { stat } from 'node:fs/promises';
import { writeJsonAtomic } from '../util/atomic.js';
import { FerryError } from '../util/errors.js';

/**
 * `data-id.json` in a shared volume's directory. A restore swaps the live data by renames (data → data.old,
 * data.new → data); another node's filesystem client may keep its cached name `data` for a while (GlusterFS with
 * its default settings: about a second; NFS: up to its attribute cache time) and so reach the old directory,
 * which the restoring node deletes: Docker's bind mount would hold it, and the container would find its volume
 * empty (`ESTALE`), or half deleted, and its writes would vanish with it. The restoring node notes the inode number of the new
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

/** The volume to check: its name, the pool's directory of volumes, and its directory's inode number from its record (if noted). */
export interface FreshTarget {
  volume: string;
  live: string;
  dirIno?: string | undefined;
}

/**
 * Make sure this node's path to a shared volume's data leads where it should: its directory `live/volume` to the
 * volume's own (`dirIno`, noted in its record at creation: a volume removed and created again on another node a
 * moment ago leaves the old directory in the trash, where a stale cached name leads), and `data` in it to the
 * directory the last restore made (the note). First list the volume's directory (on FUSE that renews this node's
 * cached names in it, the note's included), then compare the inode numbers; while one differs, list (the pool's
 * directory of volumes too while the volume's directory is the one that differs) and look again, for up to
 * `waitMs`; then refuse. Nothing noted (a volume made or restored before these checks existed): nothing compared.
 */
export async function ensureFreshData(fs: DataIdFs, { volume, live, dirIno }: FreshTarget, waitMs = FRESH_WAIT_MS): Promise<void> {
  const root = `${live}/${volume}`;
  const data = `${root}/data`;
  const deadline = Date.now() + waitMs;
  let dirStale = false;
  for (let round = 0; ; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, FRESH_STEP_MS));
    if (dirStale) await fs.readdir(live);
    await fs.readdir(root);
    const [want, have, dir] = await Promise.all([fs.readText(`${root}/${DATA_ID}`).then(parseDataId), fs.ino(data), dirIno === undefined ? undefined : fs.ino(root)]);
    dirStale = dir !== dirIno;
    const dataStale = want !== undefined && want.ino !== have;
    if (!dirStale && !dataStale) return;
    if (Date.now() < deadline) continue;
    const wait = `the share's cache on this node has not caught up after ${Math.round(waitMs / 1000)} s, so the volume is not used here: try again, and give the share the cache settings of docs/shared-pools.md (GlusterFS: three volume options; NFS: actimeo=3 or less)`;
    if (dirStale) {
      throw new FerryError('unavailable', `volume ${volume}: this node's path ${root} still leads to an earlier volume of that name (inode ${dir} here, this volume's directory is inode ${dirIno}: removed and created again on another node a moment ago?); ${wait}`);
    }
    throw new FerryError(
      'unavailable',
      `volume ${volume}: this node still sees the data it had before a restore on ${want!.node}${want!.at ? ` at ${want!.at}` : ''} (${data} is inode ${have} here, the restore made inode ${want!.ino}); ${wait}`,
    );
  }
}
