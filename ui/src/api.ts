/** The ferryd API as the page uses it: same origin, bearer token from the login screen (sessionStorage). */
import type { VolumeUsage } from '../../src/volumes/usage-types';

export type { VolumeUsage };

const KEY = 'ferry.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const token = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (t: string) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

let onUnauthorized: () => void = () => undefined;
/** What to do when the token stops working (removed on the host): back to the login screen. */
export function setUnauthorizedHandler(f: () => void): void {
  onUnauthorized = f;
}

export async function api<T>(method: string, path: string, body?: unknown, withToken: string | null = token.get()): Promise<T> {
  const headers: Record<string, string> = {};
  if (withToken) headers.authorization = `Bearer ${withToken}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (err) {
    throw new ApiError(0, 'unreachable', `cannot reach ferryd (${String(err)})`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    const err = new ApiError(res.status, e?.code ?? 'http', e?.message ?? `HTTP ${res.status}`);
    // a 401 of a backup repository (bad_password) is not about the token
    if (res.status === 401 && (e?.code ?? 'unauthorized') === 'unauthorized' && withToken === token.get()) onUnauthorized();
    throw err;
  }
  return json as T;
}

const prefetched = new Map<string, Promise<unknown>>();
/** Start a GET now (at start-up, alongside /v1/status); the first get() of that path takes its answer. */
export function prefetch(path: string): void {
  const p = api('GET', path);
  p.catch(() => undefined); // a failure is reported to the get() that takes it
  prefetched.set(path, p);
}
export const get = <T>(path: string): Promise<T> => {
  const p = prefetched.get(path);
  if (p) {
    prefetched.delete(path);
    return p as Promise<T>;
  }
  return api<T>('GET', path);
};
export const post = <T>(path: string, body: unknown = {}) => api<T>('POST', path, body);
export const enc = encodeURIComponent;

// ---- shapes of the answers (docs/api.md) ----

export interface Capacity {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
}
export interface Pool {
  name: string;
  kind: string;
  path: string;
  shared: boolean;
  ok: boolean;
  mount?: string;
  problem?: string;
  snapshotMethod?: string;
  capacity?: Capacity;
}
export interface NodeStatus {
  node: string;
  lastSeen: string;
  alive: boolean;
  version?: string;
  pools?: Array<string | { name: string; ok?: boolean; problem?: string }>;
}
export interface Attachment {
  node: string;
  volume: string;
  access?: string;
  mountIds?: string[];
  containers?: string[];
  since?: string;
  alive?: boolean;
  pool?: string;
}
export interface Status {
  version: string;
  node: string;
  startedAt: string;
  uptimeSeconds: number;
  apiListen?: string;
  pools: Pool[];
  counts: { volumes: number; mounted: number; mounts: number; trash: number };
  cluster: null | { heartbeatMs?: number; nodeTimeoutMs?: number; nodes: NodeStatus[]; attachments: Attachment[] };
  token?: { name: string; role: 'read' | 'admin' };
  backupTargets?: string[];
}
export interface Volume {
  name: string;
  pool: string;
  mountpoint: string;
  createdAt: string;
  node: string;
  options: Record<string, unknown>;
  labels: Record<string, string>;
  access: string;
  shared: boolean;
  mounts: number;
  mountIds: string[];
  attachments: Attachment[];
  lastBackupAt?: string;
  containers?: string[] | null;
  /** Data, snapshots and trash, as ferryd measured them (cached, see docs/api.md). */
  usage?: VolumeUsage;
}
export interface Snapshot {
  id: string;
  volume: string;
  name: string;
  kind: string;
  createdAt: string;
  node: string;
  method: string;
  origin: string;
  consistency: string;
  durationMs: number;
  stats: { bytes?: number; files?: number; [k: string]: unknown };
  message?: string;
  parent?: string;
  branch?: string;
}
export interface Job {
  id: string;
  kind: string;
  volume?: string;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt?: string;
  progress: { bytesDone: number; bytesTotal?: number; filesDone: number; filesTotal?: number; bytesUploaded?: number; phase?: string };
  result?: unknown;
  error?: { code: string; message: string };
}
export interface Backup {
  id: string;
  url: string;
  volume: string;
  node: string;
  time: string;
  snapshot?: string;
  files: number;
  bytes: number;
  bytesAdded: number;
  durationMs: number;
}
