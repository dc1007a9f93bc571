/** The `ferry` and `ferryd` entry point: commands, flags, exit codes. */
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { registerCliCommands } from './cli/commands.js';
import { registerSnapshotCommands } from './cli/snapshots.js';
import { registerBackupCommands } from './cli/backup.js';
import { registerTokenCommands } from './cli/tokens.js';
import { registerDoctorCommand } from './cli/doctor.js';
import { BUILTIN_DEFAULTS as DEFAULTS } from './daemon/defaults.js';
import { errorMessage, isUsageError, usageError } from './util/errors.js';
import { errorCode, errorLine } from './cli/common.js';
import { VERSION } from './version.js';

/** How long a SIGTERM's stop may take before ferryd exits anyway (FERRY_STOP_DEADLINE_MS: a test hook; systemd's own TimeoutStopSec is 90 s). */
const STOP_DEADLINE_MS = Number(process.env.FERRY_STOP_DEADLINE_MS) || 60_000;

const program = new Command('ferry')
  .description('Ferry: Docker volumes that survive containers, hosts and disks.\n`ferry daemon` runs ferryd, the volume plugin; the other commands talk to it.')
  .version(VERSION, '-V, --version')
  .option('--api-socket <path>', 'ferryd control API socket (env FERRY_API_SOCKET; default /run/ferry/api.sock)')
  .option('--plugin [state-dir]', 'talk to the managed plugin\'s ferryd: its API socket STATE-DIR/run/api.sock (default /var/lib/ferry, the plugin\'s state mount)')
  .option('--api-url <url>', 'talk to ferryd over TCP instead (its --api-listen), e.g. https://host-a:7677 (env FERRY_API_URL); token from FERRY_API_TOKEN or --api-token-file')
  .option('--api-token-file <file>', 'file holding the API token for --api-url (env FERRY_API_TOKEN_FILE)')
  .option('--api-ca <file>', 'CA certificate (PEM) to trust for an https --api-url, e.g. a self-signed one (env FERRY_API_CA)')
  .option('--json', 'print JSON for scripts instead of tables')
  .showHelpAfterError('(run with --help for usage)')
  // wrap descriptions beside long command names too (commander leaves them unwrapped below 40 columns of room)
  .configureHelp({ minWidthToWrap: 24 })
  .exitOverride();

program
  .command('daemon')
  .description('run ferryd: serve the Docker volume plugin protocol and the control API (as root, like dockerd)')
  .option('-c, --config <file>', 'YAML config file (default /etc/ferry/ferry.yaml when it exists)')
  .option('--data-dir <dir>', `where volumes and the catalog live (default ${DEFAULTS.dataDir})`)
  .option('--plugin-socket <path>', `Docker plugin socket (default ${DEFAULTS.pluginSocket})`)
  .option('--node <name>', 'this node\'s name (default: the hostname)')
  .option('--docker-host <url>', `Docker API, to find the containers that use a volume; none: no Docker engine on this host (default ${DEFAULTS.dockerHost})`)
  .option('--trash-retention <duration>', `how long removed volumes stay in the trash, e.g. 24h, 7d, 0 (default ${DEFAULTS.trashRetention})`)
  .option('--mount-root <dir>', 'give Docker each mounted volume as a bind mount DIR/NAME instead of its directory in the pool (a managed plugin: its propagatedMount)')
  .option('--api-listen <host:port>', 'also serve the control API over TCP there, e.g. 127.0.0.1:7677; every request needs a token (`ferry token create`)')
  .option('--api-tls-cert <file>', 'TLS certificate (PEM) for --api-listen; with --api-tls-key')
  .option('--api-tls-key <file>', 'TLS private key (PEM) for --api-listen')
  .addOption(new Option('--log-level <level>', 'log level (default info)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']))
  .addHelpText(
    'after',
    '\nThe control API socket is set with the global --api-socket\n(default /run/ferry/api.sock). Every flag can also be set by environment\n(FERRY_DATA_DIR, FERRY_CONFIG, FERRY_API_LISTEN, ...; empty = unset) and in the\nconfig file, e.g.:\n  dataDir: /var/lib/ferry\n  trashRetention: 7d',
  )
  .action(async (_opts: unknown, cmd: Command) => {
    const o = cmd.optsWithGlobals<Record<string, string | undefined>>();
    // The daemon's modules (HTTP server, logger, schema validator) load only here: CLI commands start faster.
    const { loadConfig } = await import('./daemon/config.js');
    const { startDaemon } = await import('./daemon/daemon.js');
    // FERRY_* environment variables stand in for flags (a managed plugin is set up by env: docs/managed-plugin.md);
    // an empty value means "not set", so a plugin's settable env can default to nothing
    const env = (name: string): string | undefined => process.env[name] || undefined;
    // a bad value is named as the user gave it: the flag, or the variable (givenAs)
    const givenAs: Record<string, string> = {};
    const pick = (key: string, flag: string | undefined, variable: string): string | undefined => {
      if (flag !== undefined) return flag;
      const v = env(variable);
      if (v !== undefined) givenAs[key] = variable;
      return v;
    };
    // a path typed on the command line is taken from the working directory, as the TLS files are
    const pickPath = (key: string, flag: string | undefined, variable: string): string | undefined => {
      const v = pick(key, flag, variable);
      return v === undefined ? undefined : resolve(v);
    };
    if ((o.apiTlsCert === undefined) !== (o.apiTlsKey === undefined)) {
      throw usageError(`${o.apiTlsCert === undefined ? '--api-tls-key' : '--api-tls-cert'} needs ${o.apiTlsCert === undefined ? '--api-tls-cert' : '--api-tls-key'} too: the certificate and its private key`);
    }
    const managed = Boolean(env('FERRY_MANAGED_PLUGIN'));
    const dataDir = pickPath('dataDir', o.dataDir, 'FERRY_DATA_DIR');
    const config = await loadConfig(
      {
        config: o.config ?? env('FERRY_CONFIG'),
        dataDir,
        pluginSocket: pickPath('pluginSocket', o.pluginSocket, 'FERRY_PLUGIN_SOCKET'),
        apiSocket: pickPath('apiSocket', o.apiSocket, 'FERRY_API_SOCKET'),
        node: pick('node', o.node, 'FERRY_NODE'),
        dockerHost: pick('dockerHost', o.dockerHost, 'FERRY_DOCKER_HOST'),
        trashRetention: pick('trashRetention', o.trashRetention, 'FERRY_TRASH_RETENTION'),
        logLevel: pick('logLevel', o.logLevel, 'FERRY_LOG_LEVEL') as never,
        apiListen: pick('apiListen', o.apiListen, 'FERRY_API_LISTEN'),
        mountRoot: pickPath('mountRoot', o.mountRoot, 'FERRY_MOUNT_ROOT'),
        apiTls: o.apiTlsCert !== undefined || o.apiTlsKey !== undefined ? ({ cert: o.apiTlsCert && resolve(o.apiTlsCert), key: o.apiTlsKey && resolve(o.apiTlsKey) } as never) : undefined,
      },
      // inside the managed plugin the config file lives in the state mount (DATA_DIR/ferry.yaml)
      managed ? join(dataDir ?? DEFAULTS.dataDir, 'ferry.yaml') : undefined,
      { 'apiTls.cert': '--api-tls-cert', 'apiTls.key': '--api-tls-key', ...givenAs },
    );
    if (managed) config.runsAs = 'managed-plugin';
    const daemon = await startDaemon(config);
    const shutdown = (signal: string) => {
      daemon.log.info({ signal }, 'shutting down');
      // a stop held up (a hung share or S3 endpoint under a job) ends anyway, saying where: whatever was under
      // way is left as a kill -9 would leave it, which start-up recovers (interrupted jobs, restores, creates)
      setTimeout(() => {
        daemon.log.error({ step: daemon.stopStep }, `shutdown did not finish within ${STOP_DEADLINE_MS / 1000} s (at: ${daemon.stopStep ?? '?'}); exiting now: the next start recovers what was under way`);
        process.exit(1);
      }, STOP_DEADLINE_MS).unref();
      daemon.stop().then(
        () => process.exit(0),
        (err) => {
          daemon.log.error({ err: errorMessage(err) }, 'unclean shutdown');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });

program
  .command('fence')
  .description("run the fencing agent beside ferryd: kill this node's writers of rwo volumes when ferryd's heartbeat stops landing on their share (see docs/shared-pools.md)")
  .option('--data-dir <dir>', `ferryd's data dir, whose fence/lease.json ferryd renews (default ${DEFAULTS.dataDir})`)
  .option('--poll <ms>', 'how often the lease is read, in ms (default 50)')
  .option('--cgroup-prefix <path>', 'only kill processes whose cgroup (v2) is under this one, e.g. Docker\'s cgroup parent (default: any process)')
  .action(async (o: { dataDir?: string; poll?: string; cgroupPrefix?: string }) => {
    const { FenceAgent } = await import('./fence/agent.js');
    const dataDir = resolve(o.dataDir ?? DEFAULTS.dataDir);
    const agent = new FenceAgent(dataDir, { pollMs: o.poll ? Number(o.poll) : 50, ...(o.cgroupPrefix ? { cgroupPrefix: o.cgroupPrefix } : {}), log: (msg, rec) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg, rec }) + '\n') });
    agent.start();
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg: `fencing agent watching ${dataDir}/fence/lease.json`, pid: process.pid }) + '\n');
    const stop = () => void agent.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });

registerCliCommands(program);
registerSnapshotCommands(program);
registerBackupCommands(program);
registerTokenCommands(program);
registerDoctorCommand(program);

// With --json, errors are JSON on stderr too: {"error": {"code", "message"}} (commander's own text is held back).
const jsonErrors = process.argv.slice(2).includes('--json');
const quiet = (c: Command): void => {
  c.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  c.commands.forEach(quiet);
};
if (jsonErrors) quiet(program);
const fail = (code: string, message: string) => process.stderr.write(errorLine(code, message, jsonErrors));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with exit code 0; usage errors were already printed (as text without --json).
    if (err.exitCode !== 0 && jsonErrors) fail('usage', err.message.replace(/^error: /, ''));
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  // A bad flag value (ferry daemon --api-listen 7677) is a usage error, as an unknown flag is: exit 2.
  if (isUsageError(err)) {
    fail('usage', errorMessage(err));
    if (!jsonErrors) process.stderr.write('(run with --help for usage)\n');
    process.exit(2);
  }
  // Operational failures (refused, not found, daemon unreachable) exit 1 with the reason on stderr.
  fail(errorCode(err), errorMessage(err));
  process.exit(1);
}
