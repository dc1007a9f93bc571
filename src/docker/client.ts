/** The few Docker Engine API calls ferryd makes: who uses a volume, restarts, volume listings, exec for snapshot hooks. */
import { request } from 'node:http';
import { isOurDriver } from './driver-name.js';

export interface ContainerRef {
  id: string;
  name: string;
  state: string;
}

/** Docker states in which a container has processes (what `docker volume rm` refuses for, as "in use"). */
export function isRunningState(state: string): boolean {
  return state === 'running' || state === 'paused' || state === 'restarting';
}

/** States in which a container holds its volumes' mounts, or is about to (`created` while Docker mounts, `removing`). */
export function mayHoldMounts(state: string): boolean {
  return isRunningState(state) || state === 'removing' || state === 'created';
}

/** A volume as Docker's own store knows it (GET /volumes/NAME): what the plugin protocol never tells a driver. */
export interface DockerVolume {
  Name: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  /** Where the volume's files are (`local`: DOCKER-ROOT/volumes/NAME/_data). */
  Mountpoint?: string;
}

/** The part of `GET /containers/ID/json` that ferryd reads. */
export interface ContainerInspect {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; Error?: string; ExitCode?: number; FinishedAt?: string };
  HostConfig: { RestartPolicy?: { Name?: string }; AutoRemove?: boolean };
  Config?: { Labels?: Record<string, string> | null };
  Mounts?: Array<{ Type?: string; Name?: string; Driver?: string }>;
}

/** An answer of the Engine API that was not a success (`status` is the HTTP status). */
export class DockerApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * The few calls ferryd makes to the Docker Engine API (to name the containers that use a volume).
 * A plain HTTP request over the engine's unix socket; no SDK for three lines of protocol.
 */
export class DockerClient {
  private readonly socketPath: string;

  constructor(host: string) {
    if (!host.startsWith('unix://')) throw new Error(`docker host ${host}: only unix:// sockets are supported`);
    this.socketPath = host.slice('unix://'.length);
  }

  private get<T>(path: string, timeoutMs = 3000): Promise<T> {
    return this.call<T>('GET', path, undefined, timeoutMs);
  }

  private call<T>(method: string, path: string, body?: unknown, timeoutMs = 3000): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const headers = payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {};
      const req = request({ socketPath: this.socketPath, path, method, headers, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) return reject(new DockerApiError(`docker API ${method} ${path}: HTTP ${status} ${text.trim()}`, status));
          try {
            resolve((text.trim() && (res.headers['content-type'] ?? '').includes('json') ? JSON.parse(text) : text) as T);
          } catch (err) {
            reject(err);
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`docker API ${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Containers (any state) that reference the named volume. */
  async containersUsing(volume: string): Promise<ContainerRef[]> {
    const filters = encodeURIComponent(JSON.stringify({ volume: [volume] }));
    const list = await this.get<Array<{ Id: string; Names?: string[]; State?: string; Mounts?: Array<{ Name?: string }> }>>(
      `/containers/json?all=1&filters=${filters}`,
    );
    return list
      .filter((c) => !c.Mounts || c.Mounts.some((m) => m.Name === volume))
      .map((c) => ({ id: c.Id.slice(0, 12), name: (c.Names?.[0] ?? c.Id).replace(/^\//, ''), state: c.State ?? 'unknown' }));
  }

  /** Every container (any state) with the names of the volumes it references, in one call. */
  async containerVolumes(): Promise<Array<ContainerRef & { volumes: string[] }>> {
    const list = await this.get<Array<{ Id: string; Names?: string[]; State?: string; Mounts?: Array<{ Type?: string; Name?: string }> }>>('/containers/json?all=1');
    return list.map((c) => ({
      id: c.Id.slice(0, 12),
      name: (c.Names?.[0] ?? c.Id).replace(/^\//, ''),
      state: c.State ?? 'unknown',
      volumes: (c.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!),
    }));
  }

  /** Containers that are not running and reference a volume of DRIVER (Docker's list; no restart policy in it). */
  async stoppedWithDriver(driver: string): Promise<Array<{ id: string; name: string; labels: Record<string, string> }>> {
    const filters = encodeURIComponent(JSON.stringify({ status: ['exited', 'created', 'dead'] }));
    const list = await this.get<Array<{ Id: string; Names?: string[]; Labels?: Record<string, string> | null; Mounts?: Array<{ Type?: string; Driver?: string }> }>>(
      `/containers/json?all=1&filters=${filters}`,
    );
    return list
      .filter((c) => (c.Mounts ?? []).some((m) => m.Type === 'volume' && m.Driver !== undefined && isOurDriver(m.Driver, driver)))
      .map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? c.Id).replace(/^\//, ''), labels: c.Labels ?? {} }));
  }

  /** What `docker inspect` says of one container: its state (with the error of its last start) and restart policy. */
  container(id: string): Promise<ContainerInspect> {
    return this.get<ContainerInspect>(`/containers/${encodeURIComponent(id)}/json`);
  }

  /** Docker's record of one volume (its labels and driver options). */
  volume(name: string): Promise<DockerVolume> {
    return this.get<DockerVolume>(`/volumes/${encodeURIComponent(name)}`);
  }

  /** Every volume, as Docker's store knows them (one call; Docker asks every driver's List). */
  async volumes(): Promise<DockerVolume[]> {
    return (await this.get<{ Volumes: DockerVolume[] | null }>('/volumes', 60_000)).Volumes ?? [];
  }

  /** Register a volume with Docker (Docker then asks the driver's Get, and Create if Get finds nothing). */
  createVolume(v: { Name: string; Driver: string; DriverOpts: Record<string, string>; Labels: Record<string, string> }): Promise<DockerVolume> {
    return this.call<DockerVolume>('POST', '/volumes/create', v, 60_000);
  }

  /**
   * The volume drivers the engine knows (`/info` Plugins.Volume). Docker 20.10 lists a legacy plugin (a
   * socket in /run/docker/plugins, or a spec file) there only once it has loaded it; `GET /volumes` makes
   * it scan its plugin directories and load every legacy volume plugin first (checked on Docker 20.10).
   */
  async volumeDrivers(): Promise<string[]> {
    await this.get('/volumes', 20_000);
    const info = await this.get<{ Plugins?: { Volume?: string[] | null } }>('/info');
    return info.Plugins?.Volume ?? [];
  }

  pause(id: string): Promise<unknown> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/pause`);
  }

  unpause(id: string): Promise<unknown> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/unpause`);
  }

  stop(id: string, timeoutSeconds = 10): Promise<unknown> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/stop?t=${timeoutSeconds}`, undefined, (timeoutSeconds + 30) * 1000);
  }

  /** Start a container; the timeout covers Docker's VolumeDriver.Mount calls (Docker itself waits 2 min for one). */
  start(id: string, timeoutMs = 60_000): Promise<unknown> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/start`, undefined, timeoutMs);
  }

  /** Run `sh -c CMD` in a running container and wait for it; returns its exit code and output. */
  async exec(id: string, cmd: string, timeoutMs = 120_000): Promise<{ exitCode: number; output: string }> {
    const created = await this.call<{ Id: string }>('POST', `/containers/${encodeURIComponent(id)}/exec`, { Cmd: ['sh', '-c', cmd], AttachStdout: true, AttachStderr: true, Tty: true });
    const output = await this.call<string>('POST', `/exec/${created.Id}/start`, { Detach: false, Tty: true }, timeoutMs);
    const info = await this.call<{ ExitCode: number | null; Running: boolean }>('GET', `/exec/${created.Id}/json`);
    return { exitCode: info.ExitCode ?? -1, output: typeof output === 'string' ? output : JSON.stringify(output) };
  }
}
