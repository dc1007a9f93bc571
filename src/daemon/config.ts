/** ferryd's configuration: the YAML file and flags, validated with errors that name the key, its line and what was expected. */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { parseDocument as ParseDocument } from 'yaml';
import { z } from 'zod';
import { FerryError, errorMessage, usageError } from '../util/errors.js';
import { parseDuration } from '../util/duration.js';
import { parseSize } from '../util/size.js';
import { parseSchedule } from '../policy/schedule.js';
import { parseKeepPolicy } from '../policy/retention.js';
import { BUILTIN_DEFAULTS } from './defaults.js';
import type { BackupTargetConfig } from '../backup/service.js';

export const DEFAULT_CONFIG_FILE = '/etc/ferry/ferry.yaml';

export interface DaemonConfig {
  dataDir: string;
  pluginSocket: string;
  apiSocket: string;
  node: string;
  dockerHost: string;
  trashRetention: string;
  trashRetentionMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** Scheduled snapshots for every volume that carries a label. */
  snapshotSchedules: Array<{ label: string; schedule: string; keep?: string }>;
  /** Storage pools besides `local` (DATA_DIR), by name. */
  pools: Record<string, PoolConfig>;
  defaultPool: string;
  heartbeatInterval: string;
  heartbeatIntervalMs: number;
  nodeTimeout: string;
  nodeTimeoutMs: number;
  /** Writers of this node's rwo volumes die this long after its last heartbeat that reached their pool (`ferry fence`); < nodeTimeout. */
  fenceDeadline: string;
  fenceDeadlineMs: number;
  /** Run (sh -c) before taking an rwo volume over from a node that is gone; the takeover waits for exit 0. */
  fenceCommand?: string;
  /** Backup targets by name (`ferry backup create VOL --target NAME`). */
  backupTargets: Record<string, BackupTargetConfig>;
  /** The secret for backup targets given by URL (else env FERRY_BACKUP_PASSWORD). */
  backupPasswordFile?: string;
  /** Also serve the control API over TCP at HOST:PORT (bearer tokens required). */
  apiListen?: string;
  /** TLS for the TCP listener: PEM certificate (chain) and key files. */
  apiTls?: { cert: string; key: string };
  /** Start the `--restart always|unless-stopped` containers Docker left stopped because ferry was not ready (docker/revival.ts). */
  restartContainers: boolean;
  /** Give Docker each mounted volume as a bind mount MOUNT_ROOT/NAME (a managed plugin's propagatedMount); unset: the pool's directory. */
  mountRoot?: string;
  /** How ferryd runs: a daemon on the host (legacy plugin socket) or inside a managed Docker plugin. */
  runsAs: 'host-daemon' | 'managed-plugin';
  /** The file the settings came from, if any. */
  configFile?: string;
}

export interface PoolConfig {
  /** dir: a directory per volume; image: a fixed-size filesystem image per volume (docs/image-pools.md). */
  kind: 'dir' | 'image';
  path: string;
  shared: boolean;
  mount?: { type: string; device: string; options?: string };
  /** Image pools: the filesystem of new images (default ext4). */
  fs?: 'ext4' | 'xfs';
  /** Image pools: the size of a volume created without `-o size=` (`10G`); without it, size= is required. */
  defaultSize?: string;
  /** Image pools: `full` (default) reserves each image's space on the pool's disk when it is made; `sparse` lets images overcommit it. */
  allocate?: 'full' | 'sparse';
}

const poolName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a pool name is [a-zA-Z0-9][a-zA-Z0-9_.-]*');

const absPath = () => z.string().refine((p) => isAbsolute(p), { message: 'must be an absolute path (one that starts with /)' });

/** The YAML file's schema: every key optional, unknown keys refused (a typo must not be ignored). */
const fileSchema = z.strictObject({
  dataDir: absPath().optional(),
  pluginSocket: absPath().optional(),
  apiSocket: absPath().optional(),
  node: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must be a host name ([a-zA-Z0-9_.-])').optional(),
  dockerHost: z
    .string()
    .refine((v) => v === 'none' || v.startsWith('unix://'), { message: 'must be a unix:// URL, or none (no Docker engine on this host)' })
    .optional(),
  trashRetention: z.string().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).optional(),
  snapshotSchedules: z
    .array(z.strictObject({ label: z.string().regex(/^[^=\s]+(=.*)?$/, 'label must be key or key=value'), schedule: z.string(), keep: z.string().optional() }))
    .optional(),
  pools: z
    .record(
      poolName,
      z.strictObject({
        kind: z.enum(['dir', 'image'], { message: 'a pool kind is dir (a directory per volume) or image (a fixed-size filesystem image per volume)' }).default('dir'),
        fs: z.enum(['ext4', 'xfs'], { message: 'the filesystem of an image pool is ext4 or xfs' }).optional(),
        defaultSize: z.string().optional(),
        allocate: z.enum(['full', 'sparse'], { message: 'allocate is full (reserve each image\'s space when it is made) or sparse (take space as it is written)' }).optional(),
        path: absPath(),
        shared: z.boolean().default(false),
        mount: z
          .strictObject({
            type: z.string().regex(/^[a-z0-9.]+$/, 'a filesystem type such as glusterfs, nfs, none'),
            device: z.string().min(1),
            options: z.string().optional(),
          })
          .optional(),
      }),
    )
    .optional(),
  defaultPool: poolName.optional(),
  backupTargets: z
    .record(
      poolName,
      z.strictObject({
        url: z.string().regex(/^(file:\/\/\/|s3:\/\/)/, 'a file:///path or s3://bucket/prefix URL'),
        password: z.string().min(1).optional(),
        passwordFile: absPath().optional(),
        keepBase: z.boolean().optional(),
        s3: z
          .strictObject({
            endpoint: z.string().url().optional(),
            region: z.string().optional(),
            pathStyle: z.boolean().optional(),
            accessKeyId: z.string().optional(),
            secretAccessKey: z.string().optional(),
          })
          .optional(),
      }),
    )
    .optional(),
  backupPasswordFile: absPath().optional(),
  heartbeatInterval: z.string().optional(),
  nodeTimeout: z.string().optional(),
  fenceDeadline: z.string().optional(),
  fenceCommand: z.string().min(1).optional(),
  apiListen: z
    .string()
    // one check, one message: a malformed address is not also told its port is out of range
    .refine((v) => /^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9_.-]+):[0-9]{1,5}$/.test(v) && Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, {
      message: 'must be HOST:PORT with a port 0-65535, e.g. 127.0.0.1:7677 or [::1]:7677',
    })
    .optional(),
  apiTls: z.strictObject({ cert: absPath(), key: absPath() }).optional(),
  restartContainers: z.boolean().optional(),
  mountRoot: absPath().optional(),
});

export type ConfigInput = z.infer<typeof fileSchema>;

export const DEFAULTS = BUILTIN_DEFAULTS;

const WORDS: Record<string, string> = { string: 'a text', number: 'a number', boolean: 'true or false', object: 'a mapping (key: value lines)', array: 'a list' };

/** The schema at a path of the settings (through optional, records and objects), to name the keys it knows. */
function schemaAt(path: PropertyKey[]): z.ZodType | undefined {
  let cur: z.ZodType | undefined = fileSchema;
  for (const key of path) {
    while (cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
    if (cur instanceof z.ZodObject) cur = (cur.shape as Record<string, z.ZodType>)[String(key)];
    else if (cur instanceof z.ZodRecord) cur = cur.valueType as z.ZodType;
    else return undefined;
  }
  while (cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
  return cur;
}

/**
 * How each setting given on the command line was given: a flag (`--api-listen`) or an environment variable
 * (`FERRY_API_LISTEN`), by its key ('apiListen', 'apiTls.cert'). Errors name what the user typed.
 */
export type GivenAs = Record<string, string>;

/** A setting's name in an error: the flag or variable it came from, else its key in the config file. */
function named(path: PropertyKey[], givenAs?: GivenAs, input?: unknown): string {
  const key = path.join('.');
  const name = givenAs?.[key] ?? (givenAs?.[String(path[0])] ? [givenAs[String(path[0])], ...path.slice(1)].join('.') : key || '(the file)');
  if (!givenAs) return name;
  // on the command line, also what was typed
  const value = path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), input);
  return typeof value === 'string' ? `${name} ${JSON.stringify(value)}` : name;
}

/**
 * Validate settings; each problem names the full path of the key (or the flag it came from), what was
 * expected in words, and its YAML line (from a file).
 */
function check(input: unknown, source: string, file?: { text: string; parseDocument: typeof ParseDocument }, givenAs?: GivenAs): ConfigInput {
  const r = fileSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const text = file?.text;
  const doc = file ? file.parseDocument(file.text) : undefined;
  const lineOf = (path: PropertyKey[]): string => {
    if (!doc) return '';
    const node = doc.getIn(path.map(String), true) as { range?: [number, number] } | undefined;
    const pair = path.length ? (doc.getIn(path.slice(0, -1).map(String), true) as { items?: Array<{ key?: { value?: unknown; range?: [number, number] } }> } | undefined) : undefined;
    const key = pair?.items?.find((it) => String(it.key?.value) === String(path[path.length - 1]))?.key;
    const at = key?.range?.[0] ?? node?.range?.[0];
    return at === undefined ? '' : ` (line ${text!.slice(0, at).split('\n').length})`;
  };
  const issues = r.error.issues
    .flatMap((i) => {
      if (i.code === 'unrecognized_keys') {
        const known = schemaAt(i.path);
        const names = known instanceof z.ZodObject ? Object.keys(known.shape).join(', ') : '';
        return i.keys.map((k) => `${[...i.path, k].join('.')}: unknown setting${names ? `; known: ${names}` : ''}${lineOf([...i.path, k])}`);
      }
      const at = named(i.path, givenAs, input);
      if (i.code === 'invalid_type') {
        const received = / received (\w+)$/.exec(i.message)?.[1];
        const want = WORDS[i.expected] ?? `a ${i.expected}`;
        return [`${at}: expected ${want}${received && received !== 'undefined' ? `, not ${WORDS[received] ?? received}` : ' (missing)'}${lineOf(i.path)}`];
      }
      return [`${at}: ${i.message}${lineOf(i.path)}`];
    })
    .join('; ');
  throw givenAs ? usageError(issues) : new FerryError('invalid', `${source}: ${issues}`);
}

/**
 * Settings: built-in defaults, then the YAML file (--config FILE, or /etc/ferry/ferry.yaml when it exists),
 * then command-line flags. Everything is validated; errors name the file and the setting.
 */
export async function loadConfig(flags: ConfigInput & { config?: string }, defaultFile: string = DEFAULT_CONFIG_FILE, givenAs: GivenAs = {}): Promise<DaemonConfig> {
  const { config: explicitFile, ...flagValues } = flags;
  const file = explicitFile ?? (existsSync(defaultFile) ? defaultFile : undefined);
  let fromFile: ConfigInput = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new FerryError('invalid', `cannot read config file ${file}: ${errorMessage(err)}`);
    }
    // the YAML parser loads only for a config file (~40 ms of ferryd's start)
    const yaml = await import('yaml');
    let doc: unknown;
    try {
      doc = yaml.parse(text);
    } catch (err) {
      throw new FerryError('invalid', `config file ${file} is not valid YAML: ${errorMessage(err)}`);
    }
    if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc))) {
      throw new FerryError('invalid', `config file ${file} must be a mapping of settings`);
    }
    fromFile = check(doc, `config file ${file}`, { text, parseDocument: yaml.parseDocument });
  }
  const defined = Object.fromEntries(Object.entries(flagValues).filter(([, v]) => v !== undefined));
  // errors name the flag (or the variable, by givenAs) a value came from
  const names = { ...Object.fromEntries(Object.keys(defined).map((k) => [k, `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`])), ...givenAs };
  const fromFlags = check(defined, 'command line', undefined, names);
  const merged = { ...DEFAULTS, ...fromFile, ...fromFlags };
  for (const [i, r] of merged.snapshotSchedules.entries()) {
    try {
      parseSchedule(r.schedule);
      if (r.keep) parseKeepPolicy(r.keep);
    } catch (err) {
      throw new FerryError('invalid', `${file ?? 'config'}: snapshotSchedules[${i}]: ${errorMessage(err)}`);
    }
  }
  const pools = (merged.pools ?? {}) as Record<string, PoolConfig>;
  const defaultPool = merged.defaultPool ?? 'local';
  if (defaultPool !== 'local' && !pools[defaultPool]) {
    throw new FerryError('invalid', `${file ?? 'config'}: defaultPool ${defaultPool} is not a configured pool (pools: local${Object.keys(pools).map((p) => ', ' + p).join('')})`);
  }
  if (fromFlags.apiTls && !merged.apiListen) throw usageError(`${names['apiTls.cert'] ?? '--api-tls-cert'} and ${names['apiTls.key'] ?? '--api-tls-key'} are for the TCP listener: give --api-listen HOST:PORT too`);
  if (merged.apiTls && !merged.apiListen) {
    throw new FerryError('invalid', `${file ?? 'config'}: apiTls is for the TCP listener: set apiListen (--api-listen HOST:PORT) too`);
  }
  for (const [name, p] of Object.entries(pools)) {
    if (p.mount && !p.shared) throw new FerryError('invalid', `${file ?? 'config'}: pools.${name}: mount: is for shared pools; add shared: true`);
    if (p.kind !== 'image' && (p.fs !== undefined || p.defaultSize !== undefined || p.allocate !== undefined)) {
      throw new FerryError('invalid', `${file ?? 'config'}: pools.${name}: fs, defaultSize and allocate are for image pools (kind: image)`);
    }
    if (p.defaultSize !== undefined) {
      try {
        parseSize(p.defaultSize, 'defaultSize');
      } catch (err) {
        throw new FerryError('invalid', `${file ?? 'config'}: pools.${name}: ${errorMessage(err)}`);
      }
    }
  }
  let trashRetentionMs: number;
  try {
    trashRetentionMs = parseDuration(merged.trashRetention, fromFlags.trashRetention === undefined ? 'trashRetention' : names.trashRetention!);
  } catch (err) {
    throw fromFlags.trashRetention === undefined ? err : usageError(errorMessage(err));
  }
  const heartbeatIntervalMs = parseDuration(merged.heartbeatInterval, 'heartbeatInterval');
  const nodeTimeoutMs = parseDuration(merged.nodeTimeout, 'nodeTimeout');
  if (heartbeatIntervalMs < 100 || nodeTimeoutMs < 2 * heartbeatIntervalMs) {
    throw new FerryError('invalid', `${file ?? 'config'}: nodeTimeout (${merged.nodeTimeout}) must be at least twice heartbeatInterval (${merged.heartbeatInterval}), which must be at least 100ms`);
  }
  // the old holder's writers must be dead before anyone takes over: fence deadline + 2 heartbeats of margin <= nodeTimeout
  const fenceDeadline = merged.fenceDeadline ?? `${Math.min(Math.floor((nodeTimeoutMs * 2) / 3), nodeTimeoutMs - 2 * heartbeatIntervalMs)}ms`;
  const fenceDeadlineMs = parseDuration(fenceDeadline, 'fenceDeadline');
  if (fenceDeadlineMs < 3 * heartbeatIntervalMs || fenceDeadlineMs + 2 * heartbeatIntervalMs > nodeTimeoutMs) {
    throw new FerryError(
      'invalid',
      `${file ?? 'config'}: fenceDeadline (${fenceDeadline}) must be at least 3 heartbeatIntervals (${merged.heartbeatInterval}) and at least 2 heartbeatIntervals shorter than nodeTimeout (${merged.nodeTimeout}): ` +
        `a cut-off node's writers must be dead before another node takes its rwo volumes over`,
    );
  }
  return {
    ...merged,
    fenceDeadline,
    fenceDeadlineMs,
    pools,
    defaultPool,
    backupTargets: (merged.backupTargets ?? {}) as Record<string, BackupTargetConfig>,
    heartbeatIntervalMs,
    nodeTimeoutMs,
    trashRetentionMs,
    runsAs: 'host-daemon',
    ...(file ? { configFile: file } : {}),
  };
}
