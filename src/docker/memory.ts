// Learns, in the background, the labels and driver options Docker keeps for ferry's volumes (for undelete).
import type { Logger } from 'pino';
import { DockerApiError, type DockerClient } from './client.js';
import { errorMessage } from '../util/errors.js';
import { isOurDriver } from './driver-name.js';
import { Periodic } from '../util/periodic.js';
import { findShadows, shadowText } from './shadows.js';

/** Where what Docker says of a volume is kept (the volume service); true when the volume is ferry's. */
export interface DockerFactsKeeper {
  rememberDocker(name: string, v: { Driver: string; Labels: Record<string, string> | null; Options: Record<string, string> | null }, authoritative: boolean): Promise<boolean>;
  /** Is there a ferry volume of that name? */
  has(name: string): boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Docker keeps a volume's labels and driver options in its own store and drops them on `docker volume rm`;
 * the plugin protocol never shows labels to a driver. So ferryd asks the Engine API after the fact:
 *
 * - `learnSoon(NAME)` after a Create has been answered (Docker holds the name's lock during Create, so
 *   never inside the plugin call): one `GET /volumes/NAME`, retried a few times while Docker has not
 *   stored the volume yet;
 * - `refreshAll()` at start-up and every `intervalMs`: one `GET /volumes`, kept: ferry's (as a managed plugin
 *   Docker names the driver `ferry:latest` or `ferry:TAG`, which a `driver` filter must spell exactly);
 *   the same pass warns of volumes of another driver under a ferry volume's name (shadows.ts).
 */
export class DockerMemory {
  private readonly ticker: Periodic;
  private readonly pending = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly docker: DockerClient,
    private readonly service: DockerFactsKeeper,
    private readonly driver: string,
    private readonly log: Logger,
    intervalMs = 10 * 60_000,
  ) {
    // a pass that outlasts the interval (thousands of volumes, a slow engine) is not started twice
    this.ticker = new Periodic(intervalMs, () => this.refreshAll());
  }

  start(): void {
    this.ticker.start(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.ticker.stop();
    await Promise.allSettled([...this.pending]);
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** After Docker's Create of NAME was answered: learn its labels once Docker has stored it. */
  learnSoon(name: string): void {
    if (this.stopped) return;
    this.track(
      (async () => {
        for (let attempt = 0; attempt < 6 && !this.stopped; attempt++) {
          await sleep(attempt === 0 ? 20 : 250 * 2 ** attempt);
          try {
            const v = await this.docker.volume(name);
            if (!isOurDriver(v.Driver, this.driver)) return; // not ours (a same-named volume of another driver)
            await this.service.rememberDocker(name, v, true);
            return;
          } catch (err) {
            // 404: Docker has not stored it yet (or the Create was Docker's probe of another name)
            if (err instanceof DockerApiError && err.status === 404) continue;
            this.log.debug({ volume: name, err: errorMessage(err) }, 'could not learn the volume from Docker; the next periodic pass will');
            return;
          }
        }
      })(),
    );
  }

  /** One pass over every volume Docker lists for this driver. */
  async refreshAll(): Promise<void> {
    let all;
    try {
      all = await this.docker.volumes();
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'could not list volumes from Docker; labels are learned on the next pass');
      return;
    }
    for (const s of findShadows(all, this.driver, (name) => this.service.has(name))) {
      const t = shadowText(s, this.driver);
      this.log.warn({ volume: s.name, driver: s.driver, fix: t.fix }, t.message);
    }
    const vols = all.filter((v) => isOurDriver(v.Driver, this.driver));
    let learned = 0;
    for (const v of vols) {
      if (this.stopped) return;
      if (await this.service.rememberDocker(v.Name, v, false).catch(() => false)) learned++;
    }
    if (learned) this.log.info({ learned }, 'learned labels and options of volumes from Docker');
  }
}
