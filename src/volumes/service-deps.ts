/** What the volume service is built from: the catalog, the pools, the node, Docker, the cluster, and the hooks of the features above it. */
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import type { VolumeOptions, VolumeOptionsParser } from './options.js';
import type { Pool } from '../pools/pool.js';
import type { DockerClient } from '../docker/client.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Quarantine } from '../util/quarantine.js';
import type { CloneSource } from './creation.js';

export interface RestoreReport {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface ServiceDeps {
  catalog: Catalog;
  /** Checks `-o` options: the core's and those of the features above (daemon/volume-options.ts). */
  parseOptions: VolumeOptionsParser;
  pools: Map<string, Pool>;
  defaultPool: string;
  node: string;
  trashRetentionMs: number;
  /** The Engine API; absent with `dockerHost: none` (no Docker engine on this host). */
  docker?: DockerClient;
  /** The Engine API's address (for messages), or `none`. */
  dockerHost?: string;
  /** The driver name Docker knows this plugin by (its socket's name: ferry.sock → ferry). */
  dockerDriver?: string;
  /** ferryd runs as a managed Docker plugin (Docker names its driver `ferry:latest`, `ferry:TAG`). */
  managedPlugin?: boolean;
  log: Logger;
  now?: () => number;
  /** Find the snapshot a clone (`-o from=VOL@SNAP`) starts from. */
  resolveClone?: (from: string) => Promise<CloneSource>;
  /**
   * What only ferryd's configuration can tell of a new volume's options (a backup target that is not configured):
   * refused before anything is made. Never asked of a volume that exists: Docker's Create of a known volume must
   * not fail because the configuration changed since.
   */
  checkNewOptions?: (opts: VolumeOptions) => void;
  /** Fill a new volume's empty data directory from a backup (`-o backup=URL`). */
  restoreBackup?: (url: string, dir: string, report?: (p: RestoreReport) => void) => Promise<void>;
  /** Shared pools: the catalog, attachments and rwo locks that every host sees. */
  cluster?: Cluster;
  /** Where read-only views of rox volumes are mounted (DATA_DIR/ro). */
  roDir?: string;
  /**
   * A managed plugin's propagatedMount: every mounted volume is given to Docker as a bind mount
   * MOUNT_ROOT/NAME of its data (read-only for rox), made at the first Mount and dropped at the last Unmount.
   * Docker maps a Mountpoint only under the plugin's propagatedMount to the host; any other path would be
   * the plugin's rootfs.
   */
  mountRoot?: string;
  /** Unreadable catalog files are moved aside and reported here. */
  quarantine?: Quarantine;
}
