// The wire contract: every shape that crosses ferryd's API, defined once (server, CLI and web UI import it; no imports here).
// Interface names match docs/openapi.yaml's components/schemas: test/unit/openapi.test.ts compares their fields.

/** The error codes of the API (`error.code`): stable, scripts rely on them. */
export type ErrorCode =
  | 'invalid' // bad input: name, option, body
  | 'not_found'
  | 'exists'
  | 'in_use'
  | 'unavailable' // a backend or dependency is down
  | 'bad_password' // a backup repository refused the password or key file (not the API's own authentication)
  | 'no_space' // a target is full (ENOSPC, quota)
  | 'corrupt' // stored data failed its checks (hash, authentication tag, format)
  | 'internal'
  | 'unauthorized' // over TCP: no token, or one that is not valid (the only 401)
  | 'forbidden'; // over TCP: the token's role does not allow it

/** Every failure answer: `{"error": {"code", "message", "details"?}}`. */
export interface ApiErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

export type AccessMode = 'rwx' | 'rwo' | 'rox';

/** The options a volume was created with (parsed `-o key=value`). */
export interface VolumeOptions {
  pool?: string;
  /** rwx: many hosts read and write (default); rwo: one host at a time; rox: many hosts, read-only. */
  access?: AccessMode;
  /** Clone: start as a writable copy of snapshot SNAP of volume VOL (`VOL@SNAP`). */
  from?: string;
  uid?: number;
  gid?: number;
  mode?: number;
  /** Scheduled snapshots: a cron schedule (UTC) and the retention of what it makes. */
  'snapshot-schedule'?: string;
  'snapshot-keep'?: string;
  /** Restore: start with the content of this backup (`file:///...?backup=ID&volume=NAME`, `s3://...`). */
  backup?: string;
  /** Scheduled backups: a cron schedule (UTC), the target (configured name or URL) and the retention. */
  'backup-schedule'?: string;
  'backup-target'?: string;
  'backup-keep'?: string;
  /** 'false': do not keep the snapshot a backup read as the base of the next one (docs/backups.md). */
  'backup-keep-base'?: 'true' | 'false';
  /** The most the volume may hold, in bytes (`-o size=10G`; enforced by btrfs qgroups, or the size of an image volume: docs/quotas.md, docs/image-pools.md). */
  size?: number;
  /** The filesystem of an image volume (image pools only; the pool's own by default). */
  fs?: 'ext4' | 'xfs';
}

/** POST /v1/volumes/{name}/resize: the volume's new limit as the filesystem enforces it. */
export interface ResizeResult {
  name: string;
  size: VolumeSize;
}

/** A volume's size limit as the filesystem enforces it (`-o size=`, `ferry volume resize`). */
export interface VolumeSize {
  /** The limit the volume was given (its `size` option), in bytes. */
  limitBytes: number;
  /** The limit the filesystem enforces now (a btrfs qgroup's max referenced); null when none is set. */
  enforcedBytes: number | null;
  /** What counts against the limit: the bytes the live data references (btrfs: the qgroup's referenced bytes, metadata included). */
  usedBytes: number | null;
  /** Why the limit is not enforced as given (then it was set again, or could not be). */
  problem?: string;
}


export interface VolumeUsage {
  /** The live data (allocated bytes, hard links once, like `du -s`); null until first measured. */
  dataBytes: number | null;
  /** When the data was last walked (cached, refreshed in the background); null if never. */
  measuredAt: string | null;
  /** What the snapshots hold and the data does not; null where not measured. */
  snapshotBytes: number | null;
  /** What holds them: its snapshots, commits of its history and saved working data of branches included. */
  snapshots: number;
  /** Of `snapshots`, how many are commits of its history (absent: none, or figures of an older ferryd). */
  commits?: number;
  /** Of `snapshots`, how many hold the saved working data of a branch not checked out (absent: none). */
  worktrees?: number;
  /** Why snapshotBytes is null (btrfs, reflink pools). */
  snapshotNote?: string;
  /** Removed volumes of the same name in the trash; null while one is not measured yet. */
  trashBytes: number | null;
}

export interface TrashUsage {
  /** What the trash entry holds (data and snapshots); null until measured. */
  bytes: number | null;
}

/** A volume as the catalog has it. */
export interface Volume {
  name: string;
  pool: string;
  mountpoint: string;
  createdAt: string;
  node: string;
  options: VolumeOptions;
  labels: Record<string, string>;
  access: AccessMode;
  shared: boolean;
  /** Docker mounts on this node. */
  mounts: number;
  mountIds: string[];
  /** What Docker's store knew of the volume, as ferryd remembers it. */
  docker?: { driver?: string; labels?: Record<string, string>; options?: Record<string, string>; learnedAt?: string };
}

/**
 * Whether Docker's own store now holds a volume's name for ferry (docker/registration.ts): a name Docker does not
 * hold, it may give to a `local` volume of its own when ferryd cannot be reached.
 */
export interface DockerRegistration {
  registered: boolean;
  /** The driver Docker holds the name with, when not ferry. */
  driver?: string;
  /** Why not registered, and what happens next. */
  reason?: string;
  /** Not registered for now (Docker's engine did not answer): ferryd tries again every few seconds. */
  retrying?: boolean;
}

/** What a restore job returns (its `result`): the new volume, the backup, and whether Docker's store holds the volume. */
export interface RestoreResult {
  volume: string;
  url: string;
  registration?: DockerRegistration;
}

/** The answer to a create (POST /v1/volumes): the volume, and whether Docker's store holds it (no Docker engine: absent). */
export interface VolumeCreated extends Volume {
  registration?: DockerRegistration;
}

/** One node's use of a volume of a shared pool (cluster attachments). */
export interface Attachment {
  node: string;
  volume: string;
  /** The volume incarnation (its createdAt). */
  createdAt: string;
  access: string;
  mountIds: string[];
  /** Container names on that node that reference the volume. */
  containers: string[];
  since: string;
  updatedAt: string;
  pool: string;
  /** False when the node's heartbeat expired. */
  alive: boolean;
}

/** A container that references a volume, as the Docker engine of this host says. */
export interface ContainerRef {
  id: string;
  name: string;
  state: string;
}

/** GET /v1/volumes: one entry. */
export interface ListedVolume extends Volume {
  attachments: Attachment[];
  /** The containers of this node that hold it (running, paused, restarting), when Docker answers; absent when none. */
  containers?: ContainerRef[];
  /** When its newest snapshot was made (from the background pass and each new snapshot); absent when none is known. */
  lastSnapshotAt?: string;
  lastBackupAt?: string;
  /** The backup targets whose newest backup of this volume failed (absent when none). */
  backupFailing?: string[];
  usage?: VolumeUsage;
}

/**
 * GET /v1/volumes?view=list: one entry, only the fields a list of volumes shows (`ferry volume ls`, the
 * web UI): a ListedVolume without mountpoint, options, mountIds and docker, which `ferry volume inspect`
 * and GET /v1/volumes/{name} give. About a third fewer bytes to send and parse (10,000 volumes: 3.5 MB).
 */
export interface VolumeSummary {
  name: string;
  pool: string;
  createdAt: string;
  node: string;
  labels: Record<string, string>;
  access: AccessMode;
  shared: boolean;
  /** Docker mounts on this node. */
  mounts: number;
  attachments: Attachment[];
  containers?: ContainerRef[];
  lastSnapshotAt?: string;
  lastBackupAt?: string;
  backupFailing?: string[];
  usage?: VolumeUsage;
}

/** GET /v1/volumes/{name}. */
/** A volume's scheduled snapshots or backups, and when they run next. */
export interface VolumeSchedule {
  /** What it makes: scheduled snapshots, or scheduled backups to `target`. */
  kind: 'snapshot' | 'backup';
  /** The cron schedule (UTC) as given, e.g. "@daily" or "0 3 * * *". */
  schedule: string;
  /** The keep policy that thins what it made, e.g. "daily=7,weekly=4"; absent: all is kept. */
  keep?: string;
  /** Backups: the target, as the volume names it. */
  target?: string;
  /** Where it comes from: "volume option", or "label KEY[=VALUE]" (a rule of ferryd's config). */
  source: string;
  /** The slot of the last scheduled run (ISO time); absent: none yet. */
  lastRun?: string;
  /** The next run (ISO time). When `due`, a slot passed without its run: it runs at the scheduler's next pass (within 15 s). */
  nextRun: string;
  due: boolean;
}

export interface VolumeDetail extends Volume {
  /** Containers using it; null when Docker cannot be asked. */
  containers: ContainerRef[] | null;
  /** A shared volume: the containers of other nodes that reference it (running or not), as those nodes report them. */
  referencedElsewhere?: Array<{ node: string; containers: string[] }>;
  /** Its schedules (scheduled snapshots, scheduled backups): empty when it has none. */
  schedules: VolumeSchedule[];
  attachments: Attachment[];
  usage?: VolumeUsage;
  usageBytes?: number;
  /** Volumes created with `-o size=`: the limit and what counts against it. */
  size?: VolumeSize;
}

export interface TrashEntry {
  id: string;
  name: string;
  pool: string;
  removedAt: string;
  expiresAt: string;
  /** The node whose ferryd removed it (and keeps its trash record: undelete and purge happen there). */
  removedBy: string;
  dockerLabels?: Record<string, string>;
  /** What the entry holds (data and snapshots); null until measured (with the usage tracker). */
  bytes?: number | null;
}

export interface Snapshot {
  id: string;
  volume: string;
  /** Which incarnation of the volume name (its creation time). */
  volumeCreatedAt: string;
  name: string;
  kind: 'snapshot' | 'commit' | 'worktree';
  createdAt: string;
  node: string;
  method: string;
  /** Who made it: a user, a schedule, the history commands, or a backup (which reads from it). */
  origin: 'manual' | 'schedule' | 'history' | 'backup';
  /**
   * crash: one instant of the data (a btrfs snapshot, a frozen copy of an image volume), or data nothing had
   * mounted; file-by-file: copied file by file while the volume was mounted (each file whole, two files maybe
   * of slightly different instants: --pause gives one instant); paused: its containers were paused; exec:
   * --exec ran in its containers first.
   */
  consistency: 'crash' | 'file-by-file' | 'paused' | 'exec';
  durationMs: number;
  stats: { files?: number; linked?: number; copied?: number; copiedBytes?: number; timings?: Record<string, number> };
  /** Commits: message, parent commit, branch it was made on. Worktrees: the branch they belong to. */
  message?: string;
  parent?: string;
  branch?: string;
  /** Scheduled snapshots: the schedule slot they ran for. */
  slot?: string;
}

/** A commit history's log (GET /v1/volumes/{name}/log). */
export interface CommitLog {
  branch: string;
  commits: Snapshot[];
}

export interface Branch {
  name: string;
  tip: string | null;
}

/** A deleted branch (DELETE /v1/volumes/{name}/branches/{branch}). */
export interface BranchDeleted extends Branch {
  /** Commits that were on this branch only: kept as snapshots, on no branch now (listed with `snapshot ls --all`). */
  orphaned: string[];
  /** The snapshot of the branch's uncommitted working data, removed with it (a forced delete only). */
  droppedWorktree?: string;
}

export interface Backup {
  id: string;
  url: string;
  volume: string;
  node: string;
  time: string;
  snapshot?: string;
  tags: string[];
  parent?: string;
  files: number;
  dirs: number;
  bytes: number;
  bytesNew: number;
  bytesAdded: number;
  durationMs: number;
}

/**
 * A job's progress: totals are absent while not known (a backup's scan phase). Phases of a backup: snapshot,
 * scan, upload, finish; of a snapshot: prepare (--exec, --pause), snapshot, scan (files = entries seen), copy
 * (files and bytes of what changed since the previous snapshot, of known totals), save.
 */
export interface JobProgress {
  bytesDone: number;
  bytesTotal?: number;
  filesDone: number;
  filesTotal?: number;
  bytesUploaded?: number;
  phase?: string;
}

export interface Job {
  id: string;
  kind: string;
  volume?: string;
  /** The backup target it reads or writes (its configured name, or the URL's location). */
  target?: string;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt?: string;
  progress: JobProgress;
  result?: unknown;
  error?: { code: string; message: string };
}

export interface PoolStatus {
  name: string;
  kind: string;
  path: string;
  shared: boolean;
  mount?: string;
  ok: boolean;
  snapshotMethod?: string;
  /** What enforces `-o size=` in this pool: `btrfs qgroups`, `image (ext4)`, or `none: ...` with the reason in a few words. */
  sizes?: string;
  problem?: string;
  capacity?: PoolCapacity;
  /** A shared pool whose filesystem does not answer: since when, and which call hung (capacity is the last known). */
  stalled?: { since: string; call: string };
}

export interface PoolCapacity {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
}

export interface NodeStatus {
  node: string;
  pid: number;
  version: string;
  startedAt: string;
  lastSeen: string;
  intervalMs: number;
  alive: boolean;
  pools: string[];
  /** The space of the node's own (not shared) pools, from its heartbeat; absent from older versions. */
  capacity?: Record<string, PoolCapacity>;
}

/** A backup target that failed when last opened; gone once it opens again. */
export interface TargetProblem {
  target: string;
  code: string;
  message: string;
  at: string;
}

/** One look at a pool's space. */
export interface CapacitySample {
  at: string;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
}

/** What ferryd kept of its pools' space (GET /v1/capacity): one sample per interval, the newest last. */
export interface CapacityHistory {
  intervalMs: number;
  pools: Record<string, CapacitySample[]>;
}

export interface DoctorCheck {
  check: string;
  state: 'ok' | 'problem' | 'skipped';
  message: string;
  fix?: string;
}

export interface Token {
  name: string;
  role: 'read' | 'admin';
  createdAt: string;
  lastUsedAt: string | null;
}

export interface StateWarning {
  code: string;
  file?: string;
  message: string;
  at: string;
}

export interface Status {
  version: string;
  node: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  dataDir: string;
  pluginSocket: string;
  apiSocket: string;
  socketActivated?: string[];
  apiListen?: string;
  dockerHost?: string;
  /** How ferryd runs: a host daemon (legacy plugin socket) or a managed Docker plugin. */
  runsAs?: 'host-daemon' | 'managed-plugin';
  /** Where mounted volumes are bind-mounted for Docker (a managed plugin's propagatedMount). */
  mountRoot?: string;
  trashRetention: string;
  backupTargets?: string[];
  /** Configured backup targets whose repository could not be opened the last time ferryd tried (wrong password, unreachable...). */
  targetProblems?: TargetProblem[];
  warnings: StateWarning[];
  pools: PoolStatus[];
  counts: { volumes: number; mounted: number; mounts: number; trash: number };
  cluster: null | { heartbeatMs: number; nodeTimeoutMs: number; nodes: NodeStatus[]; attachments: Attachment[]; [k: string]: unknown };
  token?: { name: string; role: 'read' | 'admin' };
}

// ---- answers that wrap the shapes above ----
export interface VolumeList { volumes: ListedVolume[] }
/** GET /v1/volumes?view=list. */
export interface VolumeSummaryList { volumes: VolumeSummary[] }
export interface SnapshotList { snapshots: Snapshot[] }
export interface BackupList { target: string; backups: Backup[] }
export interface JobList { jobs: Job[] }
export interface TrashList { trash: TrashEntry[] }
export interface BranchList { current: string; branches: Branch[] }
