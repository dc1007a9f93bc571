/** What Docker knew of a volume (its labels and driver options, learned from the Engine API), kept in its record and given back on undelete. */
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import type { DockerClient } from '../docker/client.js';
import { isOurDriver } from '../docker/driver-name.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import { errorMessage } from '../util/errors.js';

/** What an undelete told Docker: the volume registered again with its labels and driver options, or why not. */
export interface DockerTold {
  told: boolean;
  /** Why not; or, when told, what was left out. */
  reason?: string;
  driver?: string;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

/** What the Docker facts need of the volume service. */
export interface DockerFactsContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly now: () => number;
  readonly lock: KeyedLock;
  isShared(pool: string): boolean;
  readonly docker?: DockerClient;
  /** The Engine API's address (for messages). */
  readonly dockerHost?: string;
  /** The driver name Docker knows this plugin by. */
  readonly dockerDriver?: string;
  readonly managedPlugin: boolean;
}

export class DockerFacts {
  constructor(private readonly c: DockerFactsContext) {}

  /** Register a volume with Docker again, with the driver, labels and options Docker had for it. */
  async tell(name: string): Promise<DockerTold> {
    const known = this.c.catalog.volumes.get(name)?.docker;
    if (!this.c.docker) return { told: false, reason: 'no Docker engine on this host (dockerHost: none)' };
    // (never learned: made with `ferry volume create`, or by an older ferryd; registered all the same, without
    // labels, so that Docker's store holds the name for ferry: see docker/registration.ts)
    const unknown = !known?.driver && !known?.options;
    // Docker knows a host daemon as `ferry` (its socket) and a managed plugin as `ferry:latest` (or `ferry:TAG`),
    // and the name learned may be the other one (a move between the two): a host daemon always gives its socket's
    // name; a managed plugin its full name as learned, or `ferry` (= `ferry:latest`) for one learned by a host daemon
    const ours = this.c.dockerDriver ?? 'ferry';
    const learned = known?.driver ?? ours;
    const driver = !isOurDriver(learned, ours) ? learned : this.c.managedPlugin && learned.includes(':') ? learned : ours;
    const body = { Name: name, Driver: driver, DriverOpts: known?.options ?? {}, Labels: known?.labels ?? {} };
    try {
      let answer;
      try {
        answer = await this.c.docker.createVolume(body);
      } catch (err) {
        // a managed plugin re-created under another tag: its old name is gone (Docker looks ~15 s for a legacy socket of that name first)
        if (body.Driver === ours || !isOurDriver(body.Driver, ours) || !/not found/i.test(errorMessage(err))) throw err;
        body.Driver = ours;
        answer = await this.c.docker.createVolume(body);
      }
      if (!sameMap(answer.Labels ?? {}, body.Labels) || !sameMap(answer.Options ?? {}, body.DriverOpts)) {
        const reason = `Docker already knew volume ${name} and kept what it had (labels ${JSON.stringify(answer.Labels ?? {})}, options ${JSON.stringify(answer.Options ?? {})})`;
        this.c.log.warn({ volume: name }, reason);
        return { told: false, reason, driver: answer.Driver };
      }
      this.c.log.info({ volume: name, driver: body.Driver, labels: body.Labels, options: body.DriverOpts }, 'volume registered with Docker again');
      return { told: true, driver: body.Driver, labels: body.Labels, options: body.DriverOpts, ...(unknown ? { reason: 'ferryd never learned labels or driver options of this volume from Docker (made with `ferry volume create`, or by an older ferryd): registered without them' } : {}) };
    } catch (err) {
      const msg = errorMessage(err);
      // (Docker made a volume of another driver under this name meanwhile, e.g. `docker run -v NAME` while ours was removed)
      const other = /driver '([^']+)' already has volume/.exec(msg)?.[1];
      const fix = other
        ? `Docker has a ${other} volume ${name} now (made by a \`docker run -v ${name}\` while this one was removed?): copy out what it holds, \`docker volume rm ${name}\`, then \`docker volume create -d ${body.Driver}\` with the same options and labels (\`ferry doctor\` lists such names)`
        : `\`docker volume create -d ${body.Driver}\` with the same options and labels does it by hand`;
      const reason = `the Docker engine at ${this.c.dockerHost ?? 'its dockerHost'} did not take it (${msg}); ${fix}`;
      this.c.log.warn({ volume: name }, `undelete: ${reason}`);
      return { told: false, reason };
    }
  }

  /**
   * Remember what Docker's store holds for a volume (learned from the Engine API). `authoritative`: just
   * after Docker's Create, when empty labels mean "none"; a periodic pass never replaces known labels or
   * options by empty ones. Written only when something changed.
   */
  async remember(name: string, v: { Driver: string; Labels: Record<string, string> | null; Options: Record<string, string> | null }, authoritative: boolean): Promise<boolean> {
    return this.c.lock.run(name, async () => {
      const rec = this.c.catalog.volumes.get(name);
      if (!rec) return false;
      const cur = rec.docker ?? {};
      const labels = v.Labels && (authoritative || Object.keys(v.Labels).length > 0) ? v.Labels : (cur.labels ?? v.Labels ?? {});
      const options = v.Options && (authoritative || Object.keys(v.Options).length > 0) ? v.Options : (cur.options ?? undefined);
      if (cur.driver === v.Driver && sameMap(cur.labels, labels) && (options === undefined ? cur.options === undefined : sameMap(cur.options, options)) && cur.labels !== undefined) return false;
      rec.docker = { ...(options ? { options } : {}), driver: v.Driver, labels, learnedAt: new Date(this.c.now()).toISOString() };
      if (!this.c.isShared(rec.pool) || this.c.catalog.volumes.isOnDisk(name)) await this.c.catalog.volumes.save(name, rec);
      else this.c.catalog.volumes.put(name, rec); // (changed in memory only: the catalog's version says so)
      this.c.log.debug({ volume: name, driver: v.Driver, labels }, 'learned what Docker knows of the volume');
      return true;
    });
  }
}

function sameMap(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b ?? {}).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a![k] === b![k]);
}
