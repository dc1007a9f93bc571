// The one typed client of ferryd's API, used by the CLI (over its unix-socket/https transport) and the web UI (fetch).
import type * as W from './types.js';

/** A failure answer of ferryd (status 0: ferryd could not be reached, or answered something that is not JSON). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: W.ErrorCode | 'unreachable' | 'bad_response' | 'error',
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface WireRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}
export interface WireResponse {
  status: number;
  text: string;
}
/** How requests reach ferryd: fetch (browser, Node over TCP) or the CLI's unix socket. Rejects only with ApiError. */
export type Transport = (req: WireRequest) => Promise<WireResponse>;

/** fetch against a base URL ('' in the browser: same origin), with an optional bearer token. */
export function fetchTransport(base = '', token?: () => string | null | undefined): Transport {
  return async (req) => {
    const t = token?.();
    const headers = { ...req.headers, ...(t ? { authorization: `Bearer ${t}` } : {}) };
    let res: Response;
    try {
      res = await fetch(base + req.path, { method: req.method, headers, ...(req.body !== undefined ? { body: req.body } : {}) });
    } catch (err) {
      throw new ApiError(0, 'unreachable', `cannot reach ferryd${base ? ` at ${base}` : ''} (${String(err)})`);
    }
    return { status: res.status, text: await res.text() };
  };
}

const enc = encodeURIComponent;
const query = (q: Record<string, string | boolean | undefined>) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== false) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
};

export class FerryClient {
  constructor(readonly transport: Transport) {}

  /** Any route: the typed methods below are the ones to use; this is for the few not typed yet. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const res = await this.transport({ method, path, headers: payload !== undefined ? { 'content-type': 'application/json' } : {}, ...(payload !== undefined ? { body: payload } : {}) });
    let json: unknown;
    try {
      json = res.text ? JSON.parse(res.text) : {};
    } catch {
      throw new ApiError(res.status, 'bad_response', `ferryd answered ${res.status} with a body that is not JSON: ${res.text.slice(0, 200)}`);
    }
    if (res.status >= 200 && res.status < 300) return json as T;
    const e = (json as Partial<W.ApiErrorBody>).error;
    throw new ApiError(res.status, e?.code ?? 'error', e?.message ?? `ferryd answered HTTP ${res.status}`, e?.details);
  }

  status = () => this.call<W.Status>('GET', '/v1/status');
  doctor = () => this.call<{ checks: W.DoctorCheck[] }>('GET', '/v1/doctor');
  capacity = () => this.call<W.CapacityHistory>('GET', '/v1/capacity');

  volumes = () => this.call<W.VolumeList>('GET', '/v1/volumes');
  /** The list with only the fields a list shows (W.VolumeSummary): what `ferry volume ls` and the UI ask. */
  volumeSummaries = () => this.call<W.VolumeSummaryList>('GET', '/v1/volumes?view=list');
  volume = (name: string, o: { usage?: boolean } = {}) => this.call<W.VolumeDetail>('GET', `/v1/volumes/${enc(name)}${query({ usage: o.usage })}`);
  /** A new size limit (`10G`, `512M`, bytes): refused below what the volume uses. */
  resizeVolume = (name: string, size: string) => this.call<W.ResizeResult>('POST', `/v1/volumes/${enc(name)}/resize`, { size });
  createVolume = (name: string, options: Record<string, string> = {}, labels: Record<string, string> = {}) => this.call<W.Volume>('POST', '/v1/volumes', { name, options, labels });

  snapshots = (volume: string, o: { all?: boolean } = {}) => this.call<W.SnapshotList>('GET', `/v1/volumes/${enc(volume)}/snapshots${query({ all: o.all })}`);
  snapshot = (volume: string, ref: string) => this.call<W.Snapshot>('GET', `/v1/volumes/${enc(volume)}/snapshots/${enc(ref)}`);
  createSnapshot = (volume: string, o: { name?: string; pause?: boolean; exec?: string } = {}) => this.call<W.Snapshot>('POST', `/v1/volumes/${enc(volume)}/snapshots`, o);
  /** The same as a job (its result is the Snapshot): answers at once, progress at `job(id)`. */
  startSnapshot = (volume: string, o: { name?: string; pause?: boolean; exec?: string } = {}) => this.call<W.Job>('POST', `/v1/volumes/${enc(volume)}/snapshots`, { ...o, background: true });
  /** Delete a snapshot (refused for a branch's tip). */
  deleteSnapshot = (volume: string, ref: string) => this.call<{ removed: W.Snapshot }>('DELETE', `/v1/volumes/${enc(volume)}/snapshots/${enc(ref)}`);
  restoreSnapshot = (volume: string, ref: string, o: { restartContainers?: boolean; force?: boolean } = {}) => this.call<{ restored: W.Snapshot }>('POST', `/v1/volumes/${enc(volume)}/snapshots/${enc(ref)}/restore`, o);
  /** The commits of a branch (the current one when not given), newest first. */
  log = (volume: string, branch?: string) => this.call<W.CommitLog>('GET', `/v1/volumes/${enc(volume)}/log${query({ branch })}`);
  /** Switch the volume's data to a branch (the current branch's uncommitted changes are kept aside for it). */
  checkout = (volume: string, branch: string, o: { create?: boolean; restartContainers?: boolean; force?: boolean } = {}) => this.call<{ branch: string; commit: string | null }>('POST', `/v1/volumes/${enc(volume)}/checkout`, { branch, ...o });
  /** `reset --hard REF`: the data becomes the commit's, the current branch points at it. */
  reset = (volume: string, ref: string, o: { restartContainers?: boolean; force?: boolean } = {}) => this.call<{ commit: W.Snapshot }>('POST', `/v1/volumes/${enc(volume)}/reset`, { ref, hard: true, ...o });
  branches = (volume: string) => this.call<W.BranchList>('GET', `/v1/volumes/${enc(volume)}/branches`);
  /** Delete a branch; without `force`, refused while it holds commits on no other branch or uncommitted data. */
  deleteBranch = (volume: string, branch: string, o: { force?: boolean } = {}) => this.call<W.BranchDeleted>('DELETE', `/v1/volumes/${enc(volume)}/branches/${enc(branch)}${query({ force: o.force || undefined })}`);

  jobs = () => this.call<W.JobList>('GET', '/v1/jobs');
  job = (id: string, o: { wait?: boolean } = {}) => this.call<W.Job>('GET', `/v1/jobs/${enc(id)}${query({ wait: o.wait })}`);
  backups = (target: string, volume?: string) => this.call<W.BackupList>('GET', `/v1/backups${query({ target, volume })}`);
  startBackup = (volume: string, o: { target: string; snapshot?: string }) => this.call<W.Job>('POST', `/v1/volumes/${enc(volume)}/backups`, o);
  /** Restore a backup (by URL) into a new volume: a job. */
  restoreBackup = (url: string, volume: string, options: Record<string, string> = {}) => this.call<W.Job>('POST', '/v1/backups/restore', { url, volume, options });
  /** Forget a backup (its data goes at the next prune). */
  deleteBackup = (url: string) => this.call<{ removed: string }>('DELETE', `/v1/backups${query({ url })}`);

  trash = (o: { usage?: boolean } = {}) => this.call<W.TrashList>('GET', `/v1/trash${query({ usage: o.usage })}`);
  /** Undelete a trash entry (by id, or the newest removal of a name), under its own name or `as`. */
  undelete = (ref: string, o: { as?: string } = {}) => this.call<W.Volume>('POST', `/v1/trash/${enc(ref)}/restore`, o.as ? { as: o.as } : {});
  purgeTrash = (ref: string) => this.call<{ purged: W.TrashEntry[] }>('DELETE', `/v1/trash/${enc(ref)}`);
}
