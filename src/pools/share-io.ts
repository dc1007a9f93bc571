// Runs a shared pool's filesystem calls in a child process, with a deadline per call, and tells when the share stalls.
import type { ChildProcess } from 'node:child_process';
import { forkCallee } from '../util/call-child.js';
import { builtPath } from '../util/built-files.js';
import { FerryError } from '../util/errors.js';

/**
 * Why a child process and not fs.promises: Node's fs calls run on libuv's threadpool (4 threads by
 * default), shared by the whole daemon. Four calls hung in a FUSE or NFS share take all of them, and
 * then every fs call of ferryd waits, local pools included. Here the calls run in a child process
 * (share-io-child.ts) that only this pool uses; the main thread enforces a deadline per call. On a
 * deadline the pool is *stalled* (since when, which call), the call and every other call in flight fail
 * with `unavailable`, and the child is killed and forgotten (a process stuck in an uninterruptible wait
 * on the share goes away by itself when the share answers; ferryd never waits for it). While stalled,
 * calls fail at once, except a probe (see `probe`), which runs in a fresh child: when it answers, the pool
 * is healthy again.
 *
 * A call that has waited `fastFailMs` already makes the pool look slow: new calls are refused at once
 * (so `ferry status`, Docker's Get and List never queue behind a hung call), but the slow call still gets
 * its whole deadline to answer.
 */
export interface ShareStall {
  /** When the call that did not answer was made (ISO 8601). */
  since: string;
  /** That call, e.g. `stat /mnt/nas/ferry/.ferry-pool`. */
  call: string;
}

export interface ShareIoOptions {
  /** The pool's name, for messages. */
  pool: string;
  /** How long one call may take before the pool counts as stalled (default 5 s). */
  deadlineMs?: number;
  /** A call outstanding this long makes new calls fail at once (default 1 s). */
  fastFailMs?: number;
  /** Told when the pool stalls and when it answers again. */
  onChange?: (stall: ShareStall | undefined) => void;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  label: string;
  started: number;
  /** Walks whole trees (du): exempt from the fast-fail rule, given a longer deadline. */
  long: boolean;
  child: ChildProcess;
  timer: NodeJS.Timeout;
}

export const SHARE_DEADLINE_MS = 5000;
const CHILD = builtPath('pools/share-io-child.js');

export class ShareIo {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stall: ShareStall | undefined;
  readonly deadlineMs: number;
  private readonly fastFailMs: number;

  constructor(private readonly opts: ShareIoOptions) {
    this.deadlineMs = opts.deadlineMs ?? Number(process.env.FERRY_SHARE_DEADLINE_MS ?? SHARE_DEADLINE_MS);
    this.fastFailMs = opts.fastFailMs ?? Math.min(1000, this.deadlineMs);
  }

  /** Set while the share does not answer. */
  get stalled(): ShareStall | undefined {
    return this.stall;
  }

  /** The oldest short call still waiting, if it has waited fastFailMs already. */
  slow(): { label: string; waitedMs: number } | undefined {
    const now = Date.now();
    let old: Pending | undefined;
    for (const p of this.pending.values()) if (!p.long && (!old || p.started < old.started)) old = p;
    return old && now - old.started >= this.fastFailMs ? { label: old.label, waitedMs: now - old.started } : undefined;
  }

  private stalledError(): FerryError {
    const s = this.stall!;
    return new FerryError('unavailable', `pool ${this.opts.pool} is not answering since ${s.since} (${s.call} hung for more than ${secs(this.deadlineMs)}); nothing was done`, { stalled: s });
  }

  /**
   * One filesystem call in the child (ops in share-io-child.ts). Errors of the call itself come back
   * with their errno code (ENOENT...); a share that does not answer gives FerryError `unavailable`.
   */
  call<T>(op: string, args: unknown[], o: { long?: boolean; probe?: boolean } = {}): Promise<T> {
    const label = `${op} ${args.filter((a) => typeof a === 'string' && a.startsWith('/')).join(' ')}`.trim();
    if (this.stall && !o.probe) return Promise.reject(this.stalledError());
    const slow = o.long || o.probe ? undefined : this.slow();
    if (slow) return Promise.reject(new FerryError('unavailable', `pool ${this.opts.pool} is not answering (${slow.label} has waited ${secs(slow.waitedMs)}); nothing was done`));
    const child = this.ensureChild();
    const id = this.nextId++;
    const deadline = o.long ? Math.max(this.deadlineMs, 10 * 60_000) : this.deadlineMs;
    return new Promise<T>((resolve, reject) => {
      // not unref'd: a call in flight keeps the process alive (the child and its channel are unref'd)
      const timer = setTimeout(() => this.expired(id), deadline);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, label, started: Date.now(), long: o.long ?? false, child, timer });
      child.send({ id, op, args }, (err) => {
        if (err) this.settle(id, undefined, err);
      });
    });
  }

  private ensureChild(): ChildProcess {
    if (this.child && this.child.exitCode === null && this.child.connected) return this.child;
    const child = forkCallee(CHILD, 'json', (id, value, err) => this.settle(id, value, err), () => {
      if (this.child === child) this.child = undefined;
      for (const [id, p] of this.pending) if (p.child === child) this.settle(id, undefined, new FerryError('unavailable', `pool ${this.opts.pool}: the process making its filesystem calls exited during ${p.label}`));
    });
    this.child = child;
    return child;
  }

  private settle(id: number, value: unknown, err: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
    if (this.stall && p.child === this.child) {
      // an answer from the current child (a probe, made after the stall): the share works again
      this.stall = undefined;
      this.opts.onChange?.(undefined);
    }
  }

  /** A call ran past its deadline: the pool is stalled; its child is killed, everything in flight on it fails. */
  private expired(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (!this.stall) {
      this.stall = { since: new Date(p.started).toISOString(), call: p.label };
      this.opts.onChange?.(this.stall);
    }
    const child = p.child;
    if (this.child === child) this.child = undefined;
    const err = new FerryError('unavailable', `pool ${this.opts.pool} is not answering (${p.label} hung for ${secs(Date.now() - p.started)})`, { stalled: this.stall });
    for (const [pid, q] of [...this.pending]) {
      if (q.child !== child) continue;
      this.pending.delete(pid);
      clearTimeout(q.timer);
      q.reject(pid === id ? err : new FerryError('unavailable', `pool ${this.opts.pool} is not answering (${q.label} abandoned: ${p.label} hung)`, { stalled: this.stall }));
    }
    child.kill('SIGKILL');
    try {
      if (child.connected) child.disconnect();
    } catch {
      /* already gone */
    }
  }

  /** Kill the child (ferryd stops). */
  close(): void {
    this.child?.kill('SIGKILL');
    this.child = undefined;
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

/** The calls the shared store makes (its ShareFs), through `io`. */
export function shareFsOf(io: ShareIo) {
  return {
    readText: (p: string) => io.call<string>('readText', [p]),
    writeAtomic: (p: string, text: string, makeDir = false) => io.call<void>('writeAtomic', [p, text, makeDir]),
    writeNew: (p: string, text: string) => io.call<void>('writeNew', [p, text]),
    link: (a: string, b: string) => io.call<void>('link', [a, b]),
    nlink: async (p: string) => (await io.call<{ nlink: number }>('stat', [p])).nlink,
    unlink: (p: string) => io.call<void>('unlink', [p]),
    rename: (a: string, b: string) => io.call<void>('rename', [a, b]),
    readdir: (p: string) => io.call<string[]>('readdir', [p]),
    readdirSigs: (p: string) => io.call<Array<[string, string]>>('readdirSigs', [p]),
    sig: (p: string) => io.call<string>('sig', [p]),
    mkdir: (p: string) => io.call<void>('mkdir', [p, true]),
    fsyncDir: (p: string) => io.call<void>('fsyncDir', [p]),
  };
}
