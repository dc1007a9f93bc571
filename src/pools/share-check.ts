/** Is a shared pool's filesystem there: the marker probe, mounting the share again, marking it on first use, and refusing at once while it hangs. */
import { join } from 'node:path';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';
import { execProgram } from '../util/exec.js';
import { mountOf } from '../util/mounts.js';
import type { ShareIo } from './share-io.js';
import { makeDirs } from '../util/make-dirs.js';

/** How ferryd mounts a shared pool's filesystem itself (`mount -t TYPE -o OPTIONS DEVICE PATH`). */
export interface PoolMountSpec {
  type: string;
  device: string;
  options?: string;
}

/** The file that proves a shared pool's filesystem is mounted: it lives on the share, not in the bare mountpoint. */
export const POOL_MARKER = '.ferry-pool';

export class ShareCheck {
  /** Why the share is not usable (set by the last check), or undefined. */
  problem: string | undefined;
  private checking: Promise<boolean> | undefined;

  constructor(
    private readonly pool: string,
    private readonly root: string,
    /** The pool's filesystem calls, in a child process with a deadline (share-io.ts). */
    private readonly io: ShareIo,
    private readonly mount: PoolMountSpec | undefined,
  ) {}

  /**
   * Is the shared filesystem there? Mounts it when the pool says how, and marks a share on first use.
   * Returns false (and remembers why) when it is not; never writes into a bare mountpoint.
   */
  check(): Promise<boolean> {
    // one check at a time: while the share hangs, callers wait for the same probe instead of adding calls
    return (this.checking ??= this.checkOnce().finally(() => (this.checking = undefined)));
  }

  private async checkOnce(): Promise<boolean> {
    const marker = join(this.root, POOL_MARKER);
    // while stalled, this is the probe that tells when the share answers again
    const present = () => this.io.call<boolean>('exists', [marker], { probe: true });
    try {
      // a dead FUSE mount (its connection aborted, or its server gone) answers ENOTCONN: mount it again if we can
      let dead = false;
      const here = await present().catch((err) => {
        if (this.mount === undefined || !(isErrno(err, 'ENOTCONN') || /ENOTCONN/.test(errorMessage(err)))) throw err;
        dead = true;
        return false;
      });
      if (here) return this.healthy();
      if (this.mount) {
        const m = this.mount;
        // (the path of a dead mount cannot even be resolved: mountOf would not find it)
        if (dead) await execProgram('umount', ['-l', this.root], { timeoutMs: 30_000 }).catch(() => undefined);
        await makeDirs(this.root);
        // a dead FUSE mount ("transport endpoint is not connected") must go before mounting again
        if ((await mountOf(this.root)).mountPoint === this.root) await execProgram('umount', ['-l', this.root], { timeoutMs: 30_000 }).catch(() => undefined);
        await execProgram('mount', ['-t', m.type, ...(m.options ? ['-o', m.options] : []), m.device, this.root], { timeoutMs: 60_000 });
        if (await present()) return this.healthy();
        if ((await mountOf(this.root)).mountPoint !== this.root) throw new Error(`mount -t ${m.type} ${m.device} ${this.root} left nothing mounted there`);
        await this.mark(marker, `mounted ${m.type} ${m.device} here`);
        return this.healthy();
      }
      const m = await mountOf(this.root);
      if (m.mountPoint === '/') {
        throw new Error(
          `${this.root} is on the root filesystem, not on a mounted share, and has no ${POOL_MARKER} marker: ` +
            `mount the share there (or give the pool a mount: setting so ferryd mounts it); if this directory really is shared by every host, create the marker: touch ${marker}`,
        );
      }
      await this.mark(marker, `first use on ${m.fsType} mounted at ${m.mountPoint}`).catch((err: unknown) => {
        // the share is mounted, the pool's directory on it is not there: not made yet, or a typo in the path
        if (!isErrno(err, 'ENOENT')) throw err;
        throw new FerryError('invalid', `${this.root} does not exist on the ${m.fsType} share mounted at ${m.mountPoint}: create it there (mkdir -p ${this.root}, on one host: every host sees it) or fix the pool's path; ferryd takes it up by itself within seconds`);
      });
      return this.healthy();
    } catch (err) {
      this.problem = this.io.stalled || (err instanceof FerryError && (err.code === 'unavailable' || err.code === 'invalid')) ? errorMessage(err) : `shared filesystem not mounted: ${errorMessage(err)}`;
      return false;
    }
  }

  private healthy(): true {
    this.problem = undefined;
    return true;
  }

  private async mark(marker: string, why: string): Promise<void> {
    await this.io.call('writeExclusive', [marker, JSON.stringify({ pool: this.pool, createdAt: new Date().toISOString(), why }) + '\n']).catch((err) => {
      if (!isErrno(err, 'EEXIST')) throw err; // another host marked it at the same moment
    });
  }

  /**
   * A share that does not answer fails at once (the check goes on in the background, and is what notices that
   * the share answers again): nobody queues behind a hung call, and no call is sent to it beside the probe.
   */
  refuseIfHung(): void {
    const busy = this.checking !== undefined;
    if (!this.io.stalled && !(busy && this.io.slow())) return;
    void this.check();
    const s = this.io.stalled;
    const slow = this.io.slow();
    throw new FerryError(
      'unavailable',
      s ? `pool ${this.pool} is not answering since ${s.since} (${s.call} hung for more than ${this.io.deadlineMs / 1000} s); nothing was done` : `pool ${this.pool} is not answering (${slow?.label} has waited ${((slow?.waitedMs ?? 0) / 1000).toFixed(1)} s); nothing was done`,
      s ? { stalled: s } : undefined,
    );
  }
}
