/** What the API is given: facts about the running daemon, and the Volume Hub's optional parts. */
import type { TokenStore } from './tokens.js';
import type { Metrics } from './metrics.js';
import type { StateWarnings } from '../util/state-warnings.js';
import type { UsageTracker } from '../volumes/usage.js';
import type { VolumeInfo } from '../volumes/service.js';
import type { DoctorCheck } from '../doctor/check.js';
import type * as W from '../wire/types.js';

export interface DaemonFacts {
  version: string;
  node: string;
  pid: number;
  startedAt: string;
  dataDir: string;
  pluginSocket: string;
  apiSocket: string;
  /** The sockets systemd holds and handed over (socket activation), when it does. */
  socketActivated?: string[];
  trashRetention: string;
  /** The Docker Engine API ferryd asks (which containers reference a volume), or `none` (no engine on this host). */
  dockerHost?: string;
  /** The TCP address the API also listens on (HOST:PORT), when it does. */
  apiListen?: string;
  /** How ferryd runs: a host daemon (legacy plugin socket) or a managed Docker plugin. */
  runsAs?: 'host-daemon' | 'managed-plugin';
  /** Where mounted volumes are bind-mounted for Docker (a managed plugin's propagatedMount), when set. */
  mountRoot?: string;
  /** Names of the configured backup targets (what `target` takes in the backup routes). */
  backupTargets?: string[];
  /** Problems found in ferryd's own state and worked around (listed by `ferry status` and `ferry doctor`). */
  warnings?: StateWarnings;
}

/** The Volume Hub's parts of the API: tokens, /metrics, and serving over TCP with bearer tokens. */
export interface HubOptions {
  /** Token routes (/v1/tokens): served on the unix socket only. */
  tokens?: TokenStore;
  /** GET /metrics in the Prometheus text format. */
  metrics?: Metrics;
  /** The space volumes take (data, snapshots, trash), cached: shown in the volume and trash listings. */
  usage?: UsageTracker;
  /** GET /v1/capacity: the pools' space over the last day (the Hub's charts). */
  capacity?: () => W.CapacityHistory;
  /** Put a volume just made on a user's request into Docker's store (docker/registration.ts); no Docker engine: absent. */
  registerWithDocker?: (name: string) => Promise<W.DockerRegistration>;
  /** A volume's schedules (snapshots, backups) and their next runs, shown by volume inspect. */
  schedules?: (v: VolumeInfo) => Promise<W.VolumeSchedule[]>;
  /** GET /v1/doctor: ferryd's checks of itself (`ferry doctor`). */
  doctor?: () => Promise<DoctorCheck[]>;
  /**
   * This app serves TCP: every request needs `Authorization: Bearer TOKEN` (401 otherwise), a read token
   * only reads (403 on anything else), token routes are refused (403: tokens are managed on the host).
   */
  remote?: { tokens: TokenStore; https?: { cert: Buffer; key: Buffer }; /** Serve the web UI (built into this directory) at `/`. */ ui?: string };
}
