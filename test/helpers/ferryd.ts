import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, readFile } from 'node:fs/promises';
import { openSync, closeSync, fstatSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is dist/test/helpers/ferryd.js once built). */
export const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const FERRY_BIN = join(ROOT, 'bin', 'ferry');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the ferry CLI (a real child process) against a socket; never throws on a non-zero exit. */
export function runFerry(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [FERRY_BIN, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** Read a response whole: status, headers, text, and the JSON it holds (or undefined). */
export function readAnswer(res: IncomingMessage, done: (a: HttpAnswer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    done({ status: res.statusCode ?? 0, headers: res.headers, text, json });
  });
}

/** One raw HTTP request over a unix socket, the way Docker talks to a plugin. */
export function unixRequest(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolvePromise, reject) => {
    let answered = false;
    // agent: false: one connection per call. Node 20's default agent keeps connections alive, and a call made
    // right after a kill -9 of ferryd could be written into a pooled connection to the dead process (EPIPE)
    // instead of a new one that waits in the socket's queue, as Docker's next call after an error does.
    const req = request({ socketPath, method, path, agent: false, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      answered = true;
      readAnswer(res, resolvePromise);
    });
    // A server may answer (413) and close before a huge body is fully written: the answer counts.
    req.on('error', (err) => (answered ? undefined : reject(err)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export interface Ferryd {
  dir: string;
  dataDir: string;
  pluginSocket: string;
  apiSocket: string;
  pid: number;
  env: Record<string, string>;
  /** POST a plugin call as Docker does. */
  plugin(method: string, body?: unknown): Promise<HttpAnswer>;
  /** Run the CLI against this daemon. */
  cli(...args: string[]): Promise<RunResult>;
  logs(): Promise<string>;
  /** kill -9, as a crash would. */
  crash(): Promise<void>;
  /** Start again on the same directories (after crash or stop). */
  start(): Promise<void>;
  /** SIGTERM and wait for a clean exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** stop() if running and remove the directory. */
  destroy(): Promise<void>;
}

export interface FerrydOptions {
  dir?: string;
  pluginSocket?: string;
  /** The Docker Engine API (unix://...) or `none` (the default: no Docker engine on this host). */
  dockerHost?: string;
  extraArgs?: string[];
  /** info or more verbose: the helper waits for the "ferryd ready" line. */
  logLevel?: 'info' | 'debug';
  /** Run the daemon through this prefix (e.g. nsenter into a test host's namespaces). */
  prefix?: string[];
  /** Variables added to the daemon's environment (test hooks such as FERRY_TEST_PAUSE). */
  env?: Record<string, string>;
  /** Run another build's bin/ferry (a bench comparing two commits on one data dir); this checkout's by default. */
  bin?: string;
  /** The daemon's working directory (relative paths among extraArgs are taken from it). */
  cwd?: string;
}

/** Start a real ferryd (the built program, as a child process) on private sockets and a temporary data dir. */
export async function startFerryd(opts: FerrydOptions = {}): Promise<Ferryd> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'ferry-test-')));
  await mkdir(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  const pluginSocket = opts.pluginSocket ?? join(dir, 'plugins', 'ferry.sock');
  const apiSocket = join(dir, 'api.sock');
  const logFile = join(dir, 'ferryd.log');
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);

  const args = [
    opts.bin ?? FERRY_BIN,

    'daemon',
    '--data-dir', dataDir,
    '--plugin-socket', pluginSocket,
    '--api-socket', apiSocket,
    '--node', 'test-node',
    // none: no Docker engine on this host (tests that need one pass a DockerHost's socket)
    '--docker-host', opts.dockerHost ?? 'none',
    '--log-level', opts.logLevel ?? 'debug',
    ...(opts.extraArgs ?? []),
  ];

  const start = async () => {
    const fd = openSync(logFile, 'a');
    const offset = fstatSync(fd).size;
    const [cmd, ...rest] = [...(opts.prefix ?? []), process.execPath, ...args];
    child = spawn(cmd!, rest, { stdio: ['ignore', fd, fd], env: { ...process.env, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    closeSync(fd);
    const proc = child;
    exited = new Promise((res) => proc.once('exit', (code) => res(code)));
    const deadline = Date.now() + 15_000;
    let startedExit = false;
    void exited.then(() => (startedExit = true));
    for (;;) {
      if (startedExit) throw new Error(`ferryd exited during start-up:\n${await readFile(logFile, 'utf8')}`);
      // Ready when this process has logged so (a socket that answers may belong to another daemon).
      const text = (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(offset).toString('utf8');
      if (text.includes('"msg":"ferryd ready"')) break;
      if (Date.now() > deadline) {
        // never leave it running behind a failed start (it would hold its sockets and pools)
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`ferryd did not come up in 15 s:\n${await readFile(logFile, 'utf8')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await start();
  } catch (err) {
    if (!opts.dir) await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const self: Ferryd = {
    dir,
    dataDir,
    pluginSocket,
    apiSocket,
    get pid() {
      return child?.pid ?? -1;
    },
    env: { FERRY_API_SOCKET: apiSocket },
    plugin: (method, body = {}) => unixRequest(pluginSocket, 'POST', `/VolumeDriver.${method}`, JSON.stringify(body)),
    cli: (...a) => runFerry(a, { FERRY_API_SOCKET: apiSocket }),
    logs: () => readFile(logFile, 'utf8'),
    crash: async () => {
      child?.kill('SIGKILL');
      await exited;
      child = undefined;
    },
    start,
    stop: async () => {
      if (!child) return null;
      child.kill('SIGTERM');
      const code = await exited;
      child = undefined;
      return code;
    },
    destroy: async () => {
      await self.stop();
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** Run a command; resolves with its result, never throws on non-zero exit. */
export function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((res) => {
    const p = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) p.stdin?.end(input);
  });
}
