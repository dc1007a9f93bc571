/** The data dir's exclusive lock: flock(2) on DATA_DIR/ferryd.lock, held for the life of ferryd, released by the kernel on any death. */
import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FerryError, errorMessage, isErrno } from '../util/errors.js';

export const LOCK_FILE = 'ferryd.lock';

/** What the holder writes into the lock file once it holds the lock (for the messages of others). */
export interface LockHolder {
  pid: number;
  node: string;
  host: string;
  startedAt: string;
  version: string;
  dataDir: string;
  apiSocket: string;
  pluginSocket: string;
}

/** flock's exit code when the lock is taken (-E): tells "held by another" from flock's own errors. */
const CONFLICT = 75;

/**
 * Node has no flock(2). util-linux `flock --nonblock FD` locks the open file description it inherits as
 * fd 3; ferryd keeps its own descriptor of that same description after the child exits, so the lock stays
 * until ferryd closes it or dies (any death: the kernel drops the last reference). ferryd opens files
 * close-on-exec, so programs it runs later (mount helpers, FUSE daemons) never inherit it.
 */
function flockFd(fd: number): Promise<'locked' | 'held'> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['--nonblock', '--exclusive', '--conflict-exit-code', String(CONFLICT), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', (err) =>
      reject(isErrno(err, 'ENOENT') ? new FerryError('unavailable', 'ferryd needs util-linux flock(1) to lock its data dir, and it is not on PATH: install util-linux') : err),
    );
    child.once('exit', (code) => {
      if (code === 0) resolve('locked');
      else if (code === CONFLICT) resolve('held');
      else reject(new FerryError('internal', `flock failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Does process `pid` hold an exclusive flock on the file with this device and inode (its /proc/PID/fdinfo says so)? */
export function pidHoldsLock(pid: number, dev: number, ino: number): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      if (st.dev !== dev || st.ino !== ino) continue;
      if (/^lock:.*\bFLOCK\b.*\bWRITE\b/m.test(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))) return true;
    } catch {
      /* the descriptor closed meanwhile */
    }
  }
  return false;
}

/** Is any exclusive flock held on this file (/proc/locks: MAJOR:MINOR:INODE, device numbers in hex)? */
function lockedInKernel(dev: number, ino: number): boolean {
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
  try {
    return readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .some((l) => /\bFLOCK\b/.test(l) && /\bWRITE\b/.test(l) && l.split(/\s+/).includes(id));
  } catch {
    return false;
  }
}

export interface LockState {
  path: string;
  /** The lock file exists (some ferryd used this data dir). */
  exists: boolean;
  /** Some process holds the lock now. */
  held: boolean;
  /** What the last holder wrote into the file. */
  holder?: LockHolder;
  /** The process named in the file is the one holding the lock. */
  holderVerified: boolean;
}

/** Who holds the lock of a data dir, found without taking it (for `ferry doctor`). */
export function lockState(dataDir: string): LockState {
  const path = join(dataDir, LOCK_FILE);
  let st;
  try {
    st = statSync(path);
  } catch {
    return { path, exists: false, held: false, holderVerified: false };
  }
  const holder = readHolder(path);
  const held = lockedInKernel(st.dev, st.ino);
  return { path, exists: true, held, ...(holder ? { holder } : {}), holderVerified: held && holder !== undefined && pidHoldsLock(holder.pid, st.dev, st.ino) };
}

/** The lock as ferryd holds it. */
export class DataDirLock {
  constructor(
    readonly path: string,
    private fd: number | undefined,
  ) {}

  /** Is the lock still this process's: its descriptor holds the flock and the file at `path` is still the one locked? */
  check(): { ok: true } | { ok: false; problem: string } {
    if (this.fd === undefined) return { ok: false, problem: 'the lock was released' };
    const mine = fstatSync(this.fd);
    if (!pidHoldsLock(process.pid, mine.dev, mine.ino)) return { ok: false, problem: `this ferryd no longer holds the lock on ${this.path}` };
    try {
      const now = statSync(this.path);
      if (now.dev !== mine.dev || now.ino !== mine.ino) return { ok: false, problem: `${this.path} was replaced by another file: a second ferryd could lock the new one` };
    } catch (err) {
      return { ok: false, problem: `${this.path} was removed (${errorMessage(err)}): a second ferryd could create and lock a new one` };
    }
    return { ok: true };
  }

  /** Drop the lock (at the very end of a clean stop). The file stays: removing it would race with a starting ferryd. */
  release(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Take the data dir's lock or refuse at once, naming the daemon that holds it. Must run before anything
 * else touches the data dir. Once held, the file records who holds it.
 */
export async function lockDataDir(dataDir: string, me: LockHolder): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  // read-write, created if missing, never truncated before the lock is ours (it names the current holder)
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
  let got: 'locked' | 'held';
  try {
    got = await flockFd(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (got === 'held') {
    closeSync(fd);
    // the holder writes its name right after locking: give a daemon that is just starting a moment
    let holder = readHolder(path);
    for (let i = 0; i < 10 && !holder; i++) {
      await new Promise((r) => setTimeout(r, 50));
      holder = readHolder(path);
    }
    const st = statSync(path);
    if (holder && pidHoldsLock(holder.pid, st.dev, st.ino)) {
      throw new FerryError('in_use', `another ferryd (pid ${holder.pid}) is using ${dataDir} (node ${holder.node}, since ${holder.startedAt}, API socket ${holder.apiSocket}); stop it first, or start this one with another --data-dir`, { holder });
    }
    throw new FerryError('in_use', `another process holds the lock ${path}, so another ferryd may be using ${dataDir}${holder ? ` (the file names pid ${holder.pid})` : ''}; find it with \`grep FLOCK /proc/locks\` or \`fuser ${path}\`, stop it, or start this one with another --data-dir`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, JSON.stringify(me) + '\n', 0);
  fsyncSync(fd);
  return new DataDirLock(path, fd);
}
