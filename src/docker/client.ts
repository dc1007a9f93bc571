import { request } from 'node:http';

export interface ContainerRef {
  id: string;
  name: string;
  state: string;
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
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`docker API ${path}: HTTP ${res.statusCode} ${body.trim()}`));
          try {
            resolve(JSON.parse(body) as T);
          } catch (err) {
            reject(err);
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`docker API ${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
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
}
