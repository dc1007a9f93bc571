// Puts every ferry volume this node sees into its Docker engine's own store, so that Docker never takes another driver's volume for it.
import type { Logger } from 'pino';
import { DockerApiError, type DockerVolume } from './client.js';
import { errorMessage } from '../util/errors.js';
import { isOurDriver } from './driver-name.js';
import { Periodic } from '../util/periodic.js';
import { forEachLimit } from '../util/parallel.js';
import type * as W from '../wire/types.js';

/** What registration needs of the Docker Engine API (DockerClient has it). */
export interface RegistrationDocker {
  createVolume(v: { Name: string; Driver: string; DriverOpts: Record<string, string>; Labels: Record<string, string> }): Promise<DockerVolume>;
}

/** What registration needs of the volume service. */
export interface RegistrationVolumes {
  /** Every volume this node knows (shared ones as of the last sync). */
  names(): string[];
  has(name: string): boolean;
  /** The driver options and labels Docker gave the volume where it was made (a shared volume: on another node). */
  dockerKnown(name: string): { options?: Record<string, string>; labels?: Record<string, string> } | undefined;
}

/**
 * Docker resolves `docker run -v NAME` without a driver from its store; a name it does not hold it asks
 * every driver it has loaded, and when none answers (ferryd down, or a `docker run` that meets dockerd's own
 * shutdown) it makes a `local` volume of that name, which from then on may be mounted instead of ferry's
 * (docker/shadows.ts). Measured on Docker 20.10 (bench/docker-shadow.ts: `docker run -v` met by dockerd's
 * shutdown 20-80 ms after it began, two runs of 40 per kind): 13 and 5 of 40 on volumes made by
 * `ferry volume create` left such a volume; 0 of 80 on volumes Docker had stored in its current life, 0 of 80
 * on ones stored before its restart.
 *
 * Volumes made through Docker are in its store; those made by `ferry volume create`, clones, undeletes, and
 * shared volumes made on other nodes are not. This pass registers them (`POST /volumes/create` with driver
 * ferry: Docker asks the plugin's Get, finds the volume and stores the name), each once per ferryd start,
 * within two intervals (`intervalMs`) of ferryd's start or of learning the volume.
 *
 * While a name is being registered, the plugin must refuse Docker's Create of it (`claims`): a volume removed
 * on another node between this node's sync and Docker's Get would otherwise be made again, empty.
 */
export class Registration {
  private readonly ticker: Periodic;
  private readonly done = new Set<string>();
  private readonly inFlight = new Set<string>();
  /** The names of the last pass: a name is registered from its second sighting on (below). */
  private lastSeen = new Set<string>();
  private stopped = false;

  constructor(
    private readonly docker: RegistrationDocker,
    private readonly volumes: RegistrationVolumes,
    private readonly driver: string,
    private readonly log: Logger,
    intervalMs = 5_000,
    /** How long a user's create waits for Docker (now()): an engine that hangs must not hang the create. */
    private readonly nowWaitMs = 5_000,
  ) {
    this.ticker = new Periodic(intervalMs, () => this.pass());
  }

  start(): void {
    this.ticker.start(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.ticker.stop();
  }

  /** A name Docker itself just stored (its Create, or an undelete that told Docker). */
  stored(name: string): void {
    this.done.add(name);
  }

  /** True while this node is registering `name`: a Create of it from Docker now is not a user's. */
  claims(name: string): boolean {
    return this.inFlight.has(name);
  }

  /**
   * Register `name` now, without waiting for the passes: a volume this node just made on a user's request
   * (`ferry volume create`, a clone, a restore into a new volume), which Docker did not make and has no
   * labels of. The answer says whether Docker's store now holds the name for ferry, or why not.
   */
  async now(name: string): Promise<W.DockerRegistration> {
    if (this.stopped) return { registered: false, retrying: true, reason: 'ferryd is stopping; its next start registers the volume' };
    // a Docker engine that hangs (stopped, or stuck on another plugin) gets `nowWaitMs`: the call goes on, and
    // the volume is registered when the engine answers (or by a later pass)
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<W.DockerRegistration>((resolve) => {
      timer = setTimeout(() => resolve({ registered: false, retrying: true, reason: `Docker's engine did not answer in ${this.nowWaitMs / 1000} s; ferryd registers the volume when it does` }), this.nowWaitMs);
    });
    try {
      return await Promise.race([this.register(name), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Register what is not yet registered; forget names that are gone (a later volume of the name is new). A name
   * waits for the pass after the one that first sees it: an undelete tells Docker the volume's labels itself
   * just after it is back, and a registration without them in between would make Docker keep none.
   */
  async pass(): Promise<void> {
    const names = this.volumes.names();
    const live = new Set(names);
    for (const n of this.done) if (!live.has(n)) this.done.delete(n);
    const todo = names.filter((n) => !this.done.has(n) && this.lastSeen.has(n));
    this.lastSeen = live;
    if (todo.length === 0) return;
    let registered = 0;
    await forEachLimit(todo, 4, async (name) => {
      // (a name still in flight: a create's registration that waits for a slow engine)
      if (this.stopped || !this.volumes.has(name) || this.inFlight.has(name)) return;
      if ((await this.register(name)).registered) registered++;
    });
    if (registered) this.log.debug({ registered }, "registered ferry volumes in Docker's store");
  }

  private async register(name: string): Promise<W.DockerRegistration> {
    this.inFlight.add(name);
    try {
      // with the options and labels it was made with: Compose compares them, and a name without them looks like
      // another volume to it ("uses a different driver_opt ... remove the existing volume first")
      const known = this.volumes.dockerKnown(name);
      const v = await this.docker.createVolume({ Name: name, Driver: this.driver, DriverOpts: known?.options ?? {}, Labels: known?.labels ?? {} });
      this.done.add(name);
      return isOurDriver(v.Driver, this.driver) ? { registered: true } : { registered: false, driver: v.Driver, reason: `Docker holds volume ${name} with driver ${v.Driver}` };
    } catch (err) {
      // another driver's volume of that name (a shadow: the doctor and DockerMemory report it), Docker
      // restarting, or the volume removed meanwhile: the next pass looks again while the name is ferry's
      const conflict = err instanceof DockerApiError && err.status === 409;
      this.log[conflict ? 'warn' : 'debug']({ volume: name, err: errorMessage(err) }, conflict ? 'Docker holds another volume under the name of this ferry volume; see `ferry doctor`' : 'could not register the volume with Docker; the next pass tries again');
      if (conflict) this.done.add(name);
      return {
        registered: false,
        ...(conflict ? {} : { retrying: true }),
        reason: conflict
          ? `Docker already holds another volume named ${name} (${errorMessage(err)}): \`docker run -v ${name}\` may mount that one instead of ferry's; \`ferry doctor\` says where its files are and how to remove it`
          : `Docker's engine did not take it (${errorMessage(err)}); ferryd tries again every few seconds`,
      };
    } finally {
      this.inFlight.delete(name);
    }
  }
}
