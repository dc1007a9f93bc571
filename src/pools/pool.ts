/** The Pool interface: what the volume service asks of a place where volume data lives. */
import type { VolumeOptions } from '../wire/types.js';
import type { SnapshotMethod } from './trees/methods.js';
import type { GlusterCaches } from './gluster-cache.js';
import type { ShareFs } from './share-fs.js';
import type { SizeLimits } from './size-limits.js';

/**
 * What a pool is told of a new volume: its root's owner and mode, its size and an image's filesystem; nothing of
 * the features above (schedules, backups, access modes are the volume service's and theirs).
 */
export type VolumeSpec = Pick<VolumeOptions, 'uid' | 'gid' | 'mode' | 'size' | 'fs'>;

// A pool's status crosses the API as it is: its shape is the wire contract's.
export type { PoolStatus, PoolCapacity } from '../wire/types.js';
import type { PoolStatus } from '../wire/types.js';

/**
 * A storage pool: where volume data lives. The volume service owns names, records and reference counts;
 * a pool only places, moves and deletes directories. One file per pool kind implements this.
 */
export interface Pool {
  readonly name: string;
  readonly kind: string;
  /** Every host sees the same data (a shared filesystem). */
  readonly shared: boolean;
  /** The pool's root directory. */
  readonly root: string;
  /** A shared pool: how the shared store reaches its files (with a deadline per call, see share-io.ts). */
  readonly shareFs?: ShareFs;
  /** Throws `unavailable` when the pool cannot be used now (e.g. its shared filesystem is not mounted). */
  checkAvailable(): Promise<void>;
  /** Prepare the pool (directories, checks). */
  init(): Promise<void>;
  /** How this pool makes snapshots (known after init). */
  readonly snapshotMethod: SnapshotMethod;
  /** How this pool limits a volume's size (`-o size=`), or why it cannot (known after init; size-limits.ts). */
  readonly sizeLimits: SizeLimits;
  /** The options a new volume gets where the user gave none (an image pool's default size); recorded as given. */
  completeOptions?<O extends VolumeSpec>(opts: O): O;
  /** Make an empty volume, or with `from` one that function fills (a clone); fails with `exists` if its directory is already there. */
  create(volume: string, spec: VolumeSpec, from?: (data: string) => Promise<void>): Promise<void>;
  /**
   * Make a volume out of sight, in a staging directory of its own (a shared pool's create: other hosts never see a
   * volume directory that is still being filled): empty, a copy `from` makes (a clone), or filled by `fill` (a
   * restore writes into the empty data).
   */
  createStaged(stageId: string, spec: VolumeSpec, from?: (data: string) => Promise<void>, fill?: (dir: string) => Promise<void>): Promise<void>;
  /** Rename a staged volume into place, atomically; `exists` (and the staged copy kept) when the name is taken. */
  commitStaged(stageId: string, volume: string): Promise<void>;
  discardStaged(stageId: string): Promise<void>;
  /** Ids of the staging directories left (a create in progress, or one killed mid-way). */
  listStaged(): Promise<string[]>;
  /** The volume's own directory: its data, snapshots and history live below it. Absolute and normalised (no `.`, `..`, `//` or trailing slash). */
  volumeRoot(volume: string): string;

  /**
   * `volume → signature` (inode, mtime, ctime) of every volume's own directory, from one listing of the pool (on a
   * share one READDIRPLUS, not a LOOKUP per volume): a restore (it renames the data beside it), a first snapshot (it
   * makes the snapshots directory) or a history change gives it another. Pools whose volume roots are directories.
   */
  rootSigs?(): Promise<Map<string, string>>;

  /** The path Docker bind-mounts into containers. */
  mountpoint(volume: string): string;
  /** Make sure the volume's data is there and usable before Docker mounts it. */
  checkMountable(volume: string): Promise<void>;
  /**
   * Shared directory pools: make sure this node's path to the volume's data leads to the directory its last
   * restore made, not to the one it replaced, and its directory to this volume's, not to an earlier one of that
   * name (`dirIno`, from its record) (see data-id.ts); before anything reads the data here (the first Mount here,
   * a snapshot).
   */
  freshData?(volume: string, dirIno?: string): Promise<void>;
  /** Shared directory pools: the inode number of the volume's directory (decimal), for its record (VolumeRecord.dirIno). */
  dirIno?(volume: string): Promise<string>;
  /** Shared directory pools: which caches of the share's client answer for other nodes' changes (gluster-cache.ts). */
  clientCaches?(): Promise<GlusterCaches>;
  /**
   * Pools whose volumes are block-like (image): make the volume's data reachable at mountpoint() for one more
   * holder (a Docker Mount on this host, a snapshot, a fill); the first attaches and mounts it. Directory pools
   * have no such step: their data is always there.
   */
  attach?(volume: string): Promise<void>;
  /** One holder fewer; the last unmounts and detaches. */
  detach?(volume: string): Promise<void>;
  /** Has the volume a holder on this host now (its filesystem mounted by this ferryd)? */
  attached?(volume: string): boolean;
  /**
   * Block-like pools: where a snapshot reads the volume's tree, until `release` (the snapshot's copy runs
   * between). `pointInTime`: the tree is one instant of the filesystem (a frozen, reflinked copy of the image),
   * not the live files read one after the other.
   */
  snapshotView?(volume: string): Promise<{ dir: string; pointInTime: boolean; release(): Promise<void> }>;
  /** At start-up: the volumes Docker still has mounted here keep their attach; every other one is detached. */
  settle?(inUse: ReadonlySet<string>): Promise<void>;
  /** Block-like pools, at start-up: detach what a create cut short by a crash left attached while it filled the volume. */
  detachLeftover?(volume: string): Promise<void>;
  /**
   * Block-like pools: replace the volume's data (detached) by what `fill` writes into an empty directory (a
   * snapshot's copy), all or nothing: a new image of the same size and filesystem is filled, then renamed over the
   * old one. Directory pools swap their data directory instead (snapshots/swap.ts).
   */
  replaceData?(volume: string, fill: (dir: string) => Promise<void>): Promise<void>;
  moveToTrash(volume: string, trashId: string): Promise<void>;
  restoreFromTrash(trashId: string, volume: string): Promise<void>;
  purgeTrash(trashId: string): Promise<void>;
  hasLive(volume: string): Promise<boolean>;
  hasTrash(trashId: string): Promise<boolean>;
  /** Names of live volume directories (for reconciling with the catalog). */
  listLive(): Promise<string[]>;
  /** Ids of the trash directories (for `ferry doctor`: trash without records). */
  listTrash(): Promise<string[]>;
  /** Bytes used by one volume (walks the tree; for inspect, not for hot paths). */
  usage(volume: string): Promise<number>;
  /** Bytes held by one trash entry (its data and snapshots; walks the tree, once: the trash does not change). */
  trashUsage(trashId: string): Promise<number>;
  status(): Promise<PoolStatus>;
}
