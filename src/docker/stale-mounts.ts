// Drops the mounts ferryd still counts for volumes that no container of its Docker engine uses any more.
import type { Logger } from 'pino';
import { errorMessage } from '../util/errors.js';
import { Periodic } from '../util/periodic.js';
import { mayHoldMounts } from './client.js';

/** What this needs of the Docker Engine API (DockerClient has it). */
export interface StaleMountsDocker {
  /** Every container, any state, with the names of the volumes it references. */
  containerVolumes(): Promise<Array<{ id: string; name: string; state: string; volumes: string[] }>>;
}

/** What this needs of the volume service. */
export interface StaleMountsVolumes {
  /** The volumes with mounts on this node: each mount's Docker ID and when it was made (ISO 8601). */
  mountsHeld(): Array<{ name: string; mounts: Array<{ id: string; since: string }> }>;
  /** Docker's Unmount, as if Docker had sent it. */
  unmount(name: string, id: string): Promise<void>;
}

export interface StaleMountsOptions {
  log: Logger;
  /** How often to look (default 20 s). */
  intervalMs?: number;
  /** A mount younger than this is never dropped: Docker mounts before the container runs (default 60 s). */
  graceMs?: number;
  now?: () => number;
}

/**
 * A container holds its volumes' mounts from its start to its stop: Docker sends Mount before the
 * container runs and Unmount when it stops. Some Unmounts never reach ferryd: ferryd killed or
 * restarting when the container stopped (Docker gives up on the call and forgets the mount), dockerd
 * killed with its containers (a reboot, an OOM kill), a container killed while Docker itself was down.
 * Such a mount would count for ever: the volume looks in use (`ferry volume rm` refuses), an `rwo` volume
 * of a shared pool stays held by this node, and a volume removed on another node stays listed here.
 *
 * So every `intervalMs` this asks Docker for its containers. A volume counts as used while a container
 * that references it is running, paused, restarting or being removed. A mount of a volume that no such
 * container references, older than `graceMs`, and found so in two looks in a row, is dropped as Docker's
 * Unmount would have dropped it (with a warning naming the volume). Docker unreachable: nothing is dropped.
 * A `created` container does not count: Docker mounts while a starting container is still `created`, which
 * `graceMs` covers, but one whose start failed stays `created` for good (Swarm leaves its failed tasks' so),
 * and kept a dead container's mount, and with it an rwo volume's hold, for 10 minutes in a user trial.
 */
export class StaleMounts {
  private readonly periodic: Periodic;
  /** Mounts seen unused in the last look: `volume\0id`. */
  private suspects = new Set<string>();
  private readonly intervalMs: number;
  private readonly graceMs: number;
  private readonly now: () => number;
  private dropped = 0;

  constructor(
    private readonly docker: StaleMountsDocker,
    private readonly volumes: StaleMountsVolumes,
    private readonly opts: StaleMountsOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 20_000;
    this.graceMs = opts.graceMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.periodic = new Periodic(this.intervalMs, () => this.pass());
  }

  start(): void {
    this.periodic.start();
  }

  stop(): Promise<void> {
    return this.periodic.stop();
  }

  /** How many mounts were dropped since ferryd started. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** One look; overlapping calls share the look under way. */
  look(): Promise<void> {
    return this.periodic.run();
  }

  private async pass(): Promise<void> {
    const held = this.volumes.mountsHeld();
    if (held.length === 0) {
      this.suspects.clear();
      return;
    }
    let containers: Awaited<ReturnType<StaleMountsDocker['containerVolumes']>>;
    try {
      containers = await this.docker.containerVolumes();
    } catch (err) {
      this.opts.log.debug({ err: errorMessage(err) }, 'Docker does not answer: stale mounts are looked for when it does');
      return;
    }
    const used = new Set<string>();
    for (const c of containers) if (mayHoldMounts(c.state) && c.state !== 'created') for (const v of c.volumes) used.add(v);
    const now = this.now();
    const next = new Set<string>();
    for (const v of held) {
      if (used.has(v.name)) continue;
      for (const m of v.mounts) {
        const since = Date.parse(m.since);
        if (!(now - since >= this.graceMs)) continue;
        const key = `${v.name}\0${m.id}`;
        if (!this.suspects.has(key)) {
          next.add(key);
          continue;
        }
        const users = containers.filter((c) => c.volumes.includes(v.name)).map((c) => `${c.name} (${c.state})`);
        this.opts.log.warn(
          { volume: v.name, id: m.id, since: m.since, containers: users },
          `dropped a stale mount of ${v.name}: no running container of this Docker engine uses it (its Unmount never reached ferryd)`,
        );
        try {
          await this.volumes.unmount(v.name, m.id);
          this.dropped++;
        } catch (err) {
          this.opts.log.warn({ volume: v.name, id: m.id, err: errorMessage(err) }, 'could not drop a stale mount');
          next.add(key);
        }
      }
    }
    this.suspects = next;
  }
}
