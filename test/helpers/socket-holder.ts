/** systemd's part in tests: a process that holds ferryd's plugin socket (socket activation) and starts ferryd on it when told. */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FERRY_BIN, runFerry, type RunResult } from './ferryd.js';

export interface SocketHolder {
  dir: string;
  dataDir: string;
  apiSocket: string;
  /** The socket systemd-socket-activate listens on and hands to each ferryd. */
  socket: string;
  /** Start ferryd on the held socket and wait until it is ready (resolves with its pid). */
  startFerryd(): Promise<number>;
  /** kill -9 the running ferryd, as a crash would; the socket stays held. */
  crashFerryd(): Promise<void>;
  cli(...args: string[]): Promise<RunResult>;
  logs(): Promise<string>;
  /** Stop ferryd and the holder, remove the directory. */
  destroy(): Promise<void>;
}

const READY = '"msg":"ferryd ready"';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `systemd-socket-activate` (from systemd) listens on the socket as a .socket unit would and, on the first
 * connection, runs a small supervisor with the socket as fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=plugin). The
 * supervisor starts ferryd each time `DIR/go` appears, with LISTEN_PID set to ferryd's own pid, as
 * systemd does for a service it restarts. So a connection made while no ferryd runs waits in the socket's
 * queue instead of being refused.
 */
export async function holdSocket(opts: { socket: string; dockerHost?: string; extraArgs?: string[] }): Promise<SocketHolder> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sa-'));
  const dataDir = join(dir, 'data');
  const apiSocket = join(dir, 'api.sock');
  const log = join(dir, 'ferryd.log');
  const daemon = [
    process.execPath, FERRY_BIN, 'daemon', '--data-dir', dataDir, '--plugin-socket', opts.socket, '--api-socket', apiSocket,
    '--node', 'test-node', '--docker-host', opts.dockerHost ?? `unix://${join(dir, 'no-docker.sock')}`, '--log-level', 'debug', ...(opts.extraArgs ?? []),
  ];
  const supervisor = String.raw`
D=$1; shift
while :; do
  while [ ! -e "$D/go" ]; do sleep 0.05; done
  rm -f "$D/go"
  sh -c 'echo $$ > "$0/ferryd.pid"; export LISTEN_PID=$$; exec "$@"' "$D" "$@" >> "$D/ferryd.log" 2>&1
done`;
  const holder: ChildProcess = spawn('systemd-socket-activate', ['-l', opts.socket, '--fdname=plugin', 'sh', '-c', supervisor, 'sh', dir, ...daemon], {
    stdio: ['ignore', 'ignore', 'ignore'],
    detached: true,
  });
  const exited = new Promise<void>((r) => holder.once('exit', () => r()));
  for (let i = 0; !existsSync(opts.socket); i++) {
    if (i > 200) throw new Error(`systemd-socket-activate did not listen on ${opts.socket}`);
    await sleep(25);
  }
  const text = () => readFile(log, 'utf8').catch(() => '');
  const ferrydPid = async () => Number((await readFile(join(dir, 'ferryd.pid'), 'utf8').catch(() => '')).trim()) || undefined;
  const self: SocketHolder = {
    dir,
    dataDir,
    apiSocket,
    socket: opts.socket,
    async startFerryd() {
      const before = (await text()).split(READY).length;
      await writeFile(join(dir, 'go'), '');
      // systemd-socket-activate runs the supervisor on the first connection: make one (ferryd accepts it later)
      await new Promise<void>((r) => connect(opts.socket).once('connect', function (this: { destroy(): void }) { this.destroy(); r(); }).once('error', () => r()));
      for (const deadline = Date.now() + 20_000; (await text()).split(READY).length === before; ) {
        if (Date.now() > deadline) throw new Error(`ferryd did not become ready on the held socket:\n${await text()}`);
        await sleep(25);
      }
      return (await ferrydPid())!;
    },
    async crashFerryd() {
      const pid = await ferrydPid();
      if (pid === undefined) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
      while (existsSync(`/proc/${pid}`)) await sleep(20);
    },
    cli: (...args) => runFerry(args, { FERRY_API_SOCKET: apiSocket }),
    logs: text,
    async destroy() {
      const pid = await ferrydPid();
      if (pid !== undefined && existsSync(`/proc/${pid}`)) {
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 300 && existsSync(`/proc/${pid}`); i++) await sleep(20);
      }
      try {
        process.kill(-holder.pid!, 'SIGKILL');
      } catch {
        /* gone already */
      }
      await exited;
      await rm(opts.socket, { force: true });
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
