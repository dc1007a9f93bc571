/** Size limits of volumes (`-o size=`) as a pool's filesystem enforces them: btrfs qgroups, or a refusal that names why not. */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { execProgram } from '../util/exec.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { mountOf } from '../util/mounts.js';
import { isSubvolume, type SnapshotMethodName } from './trees/methods.js';

/** What the filesystem says of one volume's live data. */
export interface LimitState {
  /** The limit enforced now; null when none is (or quotas are off). */
  enforcedBytes: number | null;
  /** What counts against the limit (btrfs: the qgroup's referenced bytes); null when the filesystem does not count (quotas off). */
  usedBytes: number | null;
}

/**
 * How a pool limits the size of a volume's live data. Directory pools on btrfs enforce it with a qgroup on the
 * data's subvolume; every other pool refuses `size=` with `refusal`, a sentence that names the reason.
 */
export interface SizeLimits {
  /** Why `size=` cannot be enforced in this pool; undefined where it can. */
  readonly refusal: string | undefined;
  /** What enforces sizes here, in a few words for `ferry status` and the Hub: `btrfs qgroups`, `image (ext4)`, `none: ...`. */
  readonly summary: string;
  /**
   * Make the live data at `data` hold at most `bytes`. Undefined: no limit, and one the data inherited is
   * dropped (a btrfs snapshot copies its source's qgroup limit: a clone or a restore would carry it).
   */
  apply(data: string, bytes: number | undefined): Promise<void>;
  /** The limit enforced on `data` and what counts against it; with `enable`, turns the filesystem's counting on first. */
  read(data: string, opts?: { enable?: boolean }): Promise<LimitState>;
}

/** A pool that cannot enforce sizes: `size=` is refused with `refusal`; volumes without one are untouched. */
export function refusingLimits(refusal: string, summary = 'none'): SizeLimits {
  return {
    refusal,
    summary,
    apply: async (_data, bytes) => {
      if (bytes !== undefined) throw new FerryError('invalid', refusal);
    },
    read: async () => ({ enforcedBytes: null, usedBytes: null }),
  };
}

/** Where sized volumes are to be had instead. */
const IMAGE_VOLUMES = 'or use image volumes: a pool of kind image gives each volume a fixed-size filesystem image on any disk of this host (docs/image-pools.md)';
const SHARED_IMAGES = 'image volumes (a pool of kind image, docs/image-pools.md) give sized volumes on this host\'s disks; image pools on a shared filesystem are still to come';

/** The size limits a directory pool can enforce, found from its snapshot method, whether it is shared, and its filesystem. */
export async function sizeLimitsFor(pool: { name: string; root: string; shared: boolean; method: SnapshotMethodName }): Promise<SizeLimits> {
  if (pool.shared) {
    return refusingLimits(
      `option size: pool ${pool.name} is shared (NFS, GlusterFS, CephFS...): a client of a shared filesystem cannot set quotas on it, so a size cannot be enforced; ${SHARED_IMAGES}. Volumes without size= work as before`,
      'none: clients of a shared filesystem cannot set quotas',
    );
  }
  if (pool.method === 'btrfs') return new BtrfsQgroups(pool.root);
  const fsType = await mountOf(pool.root).then((m) => m.fsType, () => 'unknown');
  return refusingLimits(`option size: pool ${pool.name} is on ${fsType}: ${await projectQuotaReason(fsType)}; use a pool on btrfs (qgroups: docs/quotas.md), ${IMAGE_VOLUMES}`, `none: ${fsType} without project quotas`);
}

/** Why a directory on this filesystem cannot be limited: ext4 and xfs only with project quotas, which this kernel may lack. */
async function projectQuotaReason(fsType: string): Promise<string> {
  const option = fsType === 'ext4' ? 'CONFIG_QFMT_V2' : fsType === 'xfs' ? 'CONFIG_XFS_QUOTA' : undefined;
  if (!option) return `${fsType} cannot limit the size of a directory`;
  const prefix = `a directory on ${fsType} can be limited only by a project quota (mount -o prjquota)`;
  let config: string;
  try {
    config = gunzipSync(await readFile('/proc/config.gz')).toString('utf8');
  } catch {
    return `${prefix}, and ferry enforces none: this kernel's configuration cannot be read (no /proc/config.gz), and ferry has no project-quota path (docs/quotas.md)`;
  }
  if (!new RegExp(`^${option}=y`, 'm').test(config)) return `${prefix}, and this kernel has no project quotas (${option} is not set in /proc/config.gz): directory pools on ${fsType} cannot enforce a limit`;
  return `${prefix}; this kernel has them (${option}=y), but ferry has no project-quota path yet (docs/quotas.md says what it would need)`;
}

/**
 * btrfs: the live data of a volume is a subvolume, and its level-0 qgroup limits what it references
 * (`btrfs qgroup limit SIZE DATA`). Quotas are turned on for the filesystem when the first limit is set.
 * Referenced bytes: snapshots of the volume do not count against its limit (they are subvolumes of their own).
 */
class BtrfsQgroups implements SizeLimits {
  readonly refusal = undefined;
  readonly summary = 'btrfs qgroups';
  private enabling: Promise<void> | undefined;

  constructor(private readonly root: string) {}

  async apply(data: string, bytes: number | undefined): Promise<void> {
    if (bytes === undefined) {
      // no quotas: nothing can be inherited; otherwise drop a limit copied from a snapshot's source
      if (!(await isSubvolume(data))) return;
      const state = await this.qgroup(data);
      if (state?.enforcedBytes !== null && state !== undefined) await execProgram('btrfs', ['qgroup', 'limit', 'none', data]);
      return;
    }
    if (!(await isSubvolume(data))) {
      throw new FerryError('invalid', `option size: the data of this volume (${data}) is not a btrfs subvolume (it was made before its pool was on btrfs), so its size cannot be limited; copy it into a new volume made with -o size=`);
    }
    await this.enable();
    await execProgram('btrfs', ['qgroup', 'limit', String(bytes), data]);
  }

  async read(data: string, { enable = false }: { enable?: boolean } = {}): Promise<LimitState> {
    if (enable) await this.enable();
    return (await this.qgroup(data)) ?? { enforcedBytes: null, usedBytes: null };
  }

  /** The data's level-0 qgroup; undefined when quotas are off. */
  private async qgroup(data: string): Promise<LimitState | undefined> {
    let out: string;
    try {
      out = await execProgram('btrfs', ['qgroup', 'show', '-reF', '--raw', data], { timeoutMs: 30_000 });
    } catch (err) {
      if (/not enabled/i.test(errorMessage(err))) return undefined;
      throw err;
    }
    // Qgroupid Referenced Exclusive MaxReferenced MaxExclusive Path
    const row = out.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => /^0\/\d+$/.test(f[0] ?? ''));
    if (!row) throw new Error(`btrfs qgroup show ${data}: no qgroup of the subvolume in its answer: ${out.trim().slice(0, 200)}`);
    const max = row[3] ?? 'none';
    return { usedBytes: Number(row[1]), enforcedBytes: max === 'none' ? null : Number(max) };
  }

  /** Turn quotas on (once; a no-op when they are on) and wait for the rescan that counts what is already there. */
  private enable(): Promise<void> {
    return (this.enabling ??= (async () => {
      try {
        await execProgram('btrfs', ['qgroup', 'show', '--raw', this.root], { timeoutMs: 30_000 });
      } catch (err) {
        if (!/not enabled/i.test(errorMessage(err))) throw err;
        await execProgram('btrfs', ['quota', 'enable', this.root]);
      }
      await execProgram('btrfs', ['quota', 'rescan', '-W', this.root]);
    })().finally(() => (this.enabling = undefined)));
  }
}
