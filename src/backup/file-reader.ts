// How a backup opens and reads the files of a volume: in ferryd's process, or in a child process for a share that may hang.
import { open } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import { forkCallee } from '../util/call-child.js';
import { builtPath } from '../util/built-files.js';
import { FerryError } from '../util/errors.js';

/** One open file. */
export interface ReadHandle {
  /** Like FileHandle.read: bytes read into buf[off…], 0 at the end. */
  read(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  close(): Promise<void>;
}

/** What the backup needs to read a file; `open` rejects with an errno error (ENOENT: vanished). */
export interface FileReader {
  open(path: string): Promise<ReadHandle>;
  /** Ends the reader (a child process: killed). */
  close(): Promise<void>;
}

/** Reads in ferryd's own process, on libuv's threadpool. */
export const localReader: FileReader = {
  async open(path) {
    const fh = await open(path, 'r');
    return {
      read: async (buf, off, len, pos) => (await fh.read(buf, off, len, pos)).bytesRead,
      close: () => fh.close(),
    };
  },
  close: async () => undefined,
};

const CHILD = builtPath('backup/file-reader-child.js');

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  child: ChildProcess;
  timer: NodeJS.Timeout;
}

/**
 * Reads in a child process, so that ferryd never holds a file of the share open. Why that matters: on
 * Linux, closing a file of a FUSE share (GlusterFS) sends FLUSH to the share, and every child process
 * ferryd starts closes ferryd's open files as it execs (close-on-exec). With the share hung and one of
 * its files open in ferryd, each child process (mount, cp, the shared pool's probe) hangs in exec, and
 * Node waits for that exec on the thread that runs ferryd: the whole daemon stops, local pools too.
 * Opened files here live only in the child; a call that does not answer within `deadlineMs` fails with
 * `unavailable` and the child is killed (one stuck on the share goes when the share answers).
 */
export class ChildReader implements FileReader {
  private child: ChildProcess | undefined;
  private next = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly opts: { what: string; deadlineMs?: number }) {}

  async open(path: string): Promise<ReadHandle> {
    const h = (await this.call('open', [path], `open ${path}`)) as number;
    return {
      read: async (buf, off, len, pos) => {
        const data = (await this.call('read', [h, len, pos], `read ${path}`)) as Uint8Array;
        buf.set(data, off);
        return data.length;
      },
      close: async () => void (await this.call('close', [h], `close ${path}`)),
    };
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    child?.kill('SIGKILL');
  }

  private call(op: string, args: unknown[], what: string): Promise<unknown> {
    const child = this.ensureChild();
    const id = this.next++;
    const deadlineMs = this.opts.deadlineMs ?? 120_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.failAll(child, new FerryError('unavailable', `${this.opts.what}: ${what} on the share did not answer within ${deadlineMs / 1000} s (the share hangs)`));
        child.kill('SIGKILL');
        if (this.child === child) this.child = undefined;
      }, deadlineMs);
      this.pending.set(id, { resolve, reject, child, timer });
      child.send({ id, op, args }, (err) => {
        if (err) this.settle(id, undefined, err);
      });
    });
  }

  private ensureChild(): ChildProcess {
    if (this.child && this.child.exitCode === null && this.child.connected) return this.child;
    const child = forkCallee(CHILD, 'advanced', (id, value, err) => this.settle(id, value, err), () => {
      if (this.child === child) this.child = undefined;
      this.failAll(child, new FerryError('unavailable', `${this.opts.what}: the process reading the share exited`));
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
  }

  /** Fails every call in flight on `child`. */
  private failAll(child: ChildProcess, err: Error): void {
    for (const [id, p] of [...this.pending]) if (p.child === child) this.settle(id, undefined, err);
  }
}
