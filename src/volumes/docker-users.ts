/** Which containers of this host use a volume, asked of Docker (and cached for a moment for listings). */
import type { Logger } from 'pino';
import { mayHoldMounts, type ContainerRef, type DockerClient } from '../docker/client.js';
import { errorMessage } from '../util/errors.js';

/** What the queries need. */
export interface DockerUsersContext {
  readonly log: Logger;
  readonly now: () => number;
  readonly docker?: DockerClient;
}

export class DockerUsers {
  constructor(private readonly c: DockerUsersContext) {}

  private holders: { at: number; map: Promise<Map<string, ContainerRef[]> | undefined> } | undefined;

  /**
   * The containers of this host that hold each volume (running, paused, restarting): one Docker call, shared
   * by the callers of the next 5 s (the volumes list asks on every poll). Undefined when Docker does not answer.
   */
  holding(): Promise<Map<string, ContainerRef[]> | undefined> {
    const docker = this.c.docker;
    if (!docker) return Promise.resolve(undefined);
    if (this.holders && this.c.now() - this.holders.at < 5_000) return this.holders.map;
    const map = docker.containerVolumes().then(
      (list) => {
        const out = new Map<string, ContainerRef[]>();
        for (const c of list) {
          if (!mayHoldMounts(c.state)) continue;
          for (const v of c.volumes) out.set(v, [...(out.get(v) ?? []), { id: c.id, name: c.name, state: c.state }]);
        }
        return out;
      },
      (err: unknown) => {
        this.c.log.debug({ err: errorMessage(err) }, 'docker API not reachable');
        return undefined;
      },
    );
    this.holders = { at: this.c.now(), map };
    return map;
  }

  async using(name: string): Promise<ContainerRef[] | undefined> {
    if (!this.c.docker) return undefined;
    try {
      return await this.c.docker.containersUsing(name);
    } catch (err) {
      this.c.log.debug({ err: errorMessage(err) }, 'docker API not reachable');
      return undefined;
    }
  }
}
