// Starts the containers Docker gave up on because ferry was not there when they needed it (boot order).
import type { Logger } from 'pino';
import type { ContainerInspect } from './client.js';
import { errorMessage } from '../util/errors.js';
import { Periodic } from '../util/periodic.js';

/** What the reviver needs of the Docker Engine API (DockerClient has it). */
export interface RevivalDocker {
  stoppedWithDriver(driver: string): Promise<Array<{ id: string; name: string; labels: Record<string, string> }>>;
  container(id: string): Promise<ContainerInspect>;
  start(id: string, timeoutMs?: number): Promise<unknown>;
}

export interface RevivalOptions {
  /** The driver name Docker knows ferry by (the plugin socket's name). */
  driver: string;
  log: Logger;
  /** How often to look (default 10 s). The first look is at start(). */
  intervalMs?: number;
  /** The longest wait between two tries of one container whose start keeps failing (default 5 min). */
  maxBackoffMs?: number;
  now?: () => number;
}

/** One container ferryd started again, or tried to. */
export interface Revived {
  id: string;
  name: string;
  policy: string;
  /** Why Docker had left it stopped (its State.Error). */
  reason: string;
  at: string;
  ok: boolean;
  error?: string;
}

const POLICIES = new Set(['always', 'unless-stopped']);

/**
 * Docker 20.10 starts its containers at boot whether or not their volume plugin is there: it looks a
 * missing legacy plugin up for ~15 s per volume and per container, then leaves the container `exited`
 * (255, State.Error `... plugin "ferry" not found`) and never tries it again, restart policy or not. A
 * share that mounts late does the same through ferry's own Mount error. Docker's retries end there; this
 * does not: every `intervalMs` ferryd lists the stopped containers with a ferry volume and starts again
 * those that
 *
 * - have restart policy `always` or `unless-stopped` (what Docker itself would have started at boot),
 * - are not Swarm tasks (Swarm replaces a failed task itself),
 * - were left stopped by a failed start because ferry was missing, or one of its pools could not be
 *   used (State.Error, see namesDriver): a container that exited on its own, that someone stopped, or
 *   whose start ferry refused for another reason (an rwo volume another node holds) is left alone.
 *
 * A container whose start fails again is tried again later, waiting twice as long each time (up to
 * maxBackoffMs). Docker unreachable (still starting: its API answers only after its own boot) is not an
 * error: the next look tries again.
 */
export class Revival {
  private readonly periodic: Periodic;
  private readonly tries = new Map<string, { count: number; next: number }>();
  private readonly history: Revived[] = [];
  private dockerDown = false;
  private readonly intervalMs: number;
  private readonly maxBackoffMs: number;
  private readonly now: () => number;

  constructor(
    private readonly docker: RevivalDocker,
    private readonly opts: RevivalOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
    this.periodic = new Periodic(this.intervalMs, () => this.pass());
  }

  start(): void {
    this.periodic.start(true);
  }

  stop(): Promise<void> {
    return this.periodic.stop();
  }

  /** What ferryd started again (or tried to) since it started, newest last (at most 100). */
  revived(): Revived[] {
    return [...this.history];
  }

  /** One look; overlapping calls share the look under way. */
  look(): Promise<void> {
    return this.periodic.run();
  }

  /** Why a container should be started again, or undefined if it should be left alone. */
  reasonToRevive(c: ContainerInspect): string | undefined {
    if (c.State.Running || c.State.Status === 'running' || c.State.Status === 'restarting' || c.State.Status === 'paused') return undefined;
    const policy = c.HostConfig.RestartPolicy?.Name ?? '';
    if (!POLICIES.has(policy)) return undefined;
    if (c.Config?.Labels?.['com.docker.swarm.task.id']) return undefined;
    const err = c.State.Error ?? '';
    if (!err || !this.namesDriver(err)) return undefined;
    return err;
  }

  /**
   * Docker's own words when the plugin is missing or does not answer its socket, or ferry's answer to a
   * VolumeDriver call while a pool cannot be used (a share not mounted yet, a share that hangs). Not any
   * other refusal: a volume another node holds, a name that is wrong, stay the user's to resolve.
   */
  private namesDriver(err: string): boolean {
    const d = this.opts.driver.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const missing = new RegExp(`plugin "?${d}"? not found|volume plugin ${d}\\b.*(not found|connection refused|no such file)|/${d}\\.sock.*(connection refused|no such file)`);
    const poolDown = /VolumeDriver\.\w+: .*pool \S+ is not (usable|answering)/;
    return missing.test(err) || poolDown.test(err);
  }

  private async pass(): Promise<void> {
    let stopped: Awaited<ReturnType<RevivalDocker['stoppedWithDriver']>>;
    try {
      stopped = await this.docker.stoppedWithDriver(this.opts.driver);
      if (this.dockerDown) this.opts.log.info('Docker answers again: looking for containers it could not start');
      this.dockerDown = false;
    } catch (err) {
      if (!this.dockerDown) this.opts.log.info({ err: errorMessage(err) }, 'Docker does not answer (yet): containers it could not start are looked for when it does');
      this.dockerDown = true;
      return;
    }
    const seen = new Set(stopped.map((c) => c.id));
    for (const id of this.tries.keys()) if (!seen.has(id)) this.tries.delete(id);
    for (const s of stopped) {
      if (s.labels['com.docker.swarm.task.id']) continue;
      const t = this.tries.get(s.id);
      if (t && t.next > this.now()) continue;
      let c: ContainerInspect;
      try {
        c = await this.docker.container(s.id);
      } catch {
        continue; // removed meanwhile
      }
      const reason = this.reasonToRevive(c);
      if (!reason) {
        this.tries.delete(s.id);
        continue;
      }
      await this.revive(c, reason, t?.count ?? 0);
    }
  }

  private async revive(c: ContainerInspect, reason: string, earlier: number): Promise<void> {
    const name = c.Name.replace(/^\//, '');
    const policy = c.HostConfig.RestartPolicy?.Name ?? '';
    const entry: Revived = { id: c.Id.slice(0, 12), name, policy, reason, at: new Date(this.now()).toISOString(), ok: false };
    try {
      await this.docker.start(c.Id, 150_000);
      entry.ok = true;
      this.tries.delete(c.Id);
      this.opts.log.warn({ container: name, id: entry.id, policy, reason }, 'started a container that Docker had left stopped because ferry was not ready (restart policy ' + policy + ')');
    } catch (err) {
      entry.error = errorMessage(err);
      const count = earlier + 1;
      const wait = Math.min(this.intervalMs * 2 ** (count - 1), this.maxBackoffMs);
      this.tries.set(c.Id, { count, next: this.now() + wait });
      this.opts.log.warn({ container: name, id: entry.id, policy, err: entry.error, retryInMs: wait }, 'could not start again a container that Docker had left stopped; trying again later');
    }
    this.history.push(entry);
    if (this.history.length > 100) this.history.shift();
  }
}
