/** What every command shares: the API client from the flags, JSON output, key=value options, errors. */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient, DEFAULT_API_SOCKET, type RemoteApi } from './client.js';
import { FerryError, errorMessage, usageError } from '../util/errors.js';
import { ApiError } from '../wire/client.js';
import type { DockerRegistration } from '../wire/types.js';

interface GlobalOpts {
  apiSocket?: string;
  apiUrl?: string;
  apiTokenFile?: string;
  apiCa?: string;
  plugin?: string | boolean;
  json?: boolean;
}

/** A managed plugin's API socket: in its state mount, STATE_DIR/run/api.sock on the host (docs/managed-plugin.md). */
export const PLUGIN_STATE_DIR = '/var/lib/ferry';
export const pluginApiSocket = (stateDir = PLUGIN_STATE_DIR): string => join(stateDir, 'run/api.sock');

/**
 * The unix socket to ask: --api-socket / FERRY_API_SOCKET; --plugin [STATE_DIR] (a managed plugin's); else the host
 * daemon's default, or the managed plugin's when only that one exists.
 */
export function apiSocketPath(g: GlobalOpts): string {
  if (g.apiSocket) return g.apiSocket;
  if (g.plugin !== undefined && g.plugin !== false) return pluginApiSocket(typeof g.plugin === 'string' ? g.plugin : undefined);
  if (process.env.FERRY_API_SOCKET) return process.env.FERRY_API_SOCKET;
  if (!existsSync(DEFAULT_API_SOCKET) && existsSync(pluginApiSocket())) return pluginApiSocket();
  return DEFAULT_API_SOCKET;
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new FerryError('invalid', `cannot read the ${what} file ${path}: ${errorMessage(err)}`);
  }
}

/** --api-url / FERRY_API_URL: talk to ferryd over TCP with a token (from FERRY_API_TOKEN or a file, never a flag: ps shows flags). */
function remoteApi(g: GlobalOpts): RemoteApi | undefined {
  const url = g.apiUrl ?? process.env.FERRY_API_URL;
  if (!url) return undefined;
  if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new FerryError('invalid', `API URL ${JSON.stringify(url)}: write http://HOST:PORT or https://HOST:PORT`);
  const tokenFile = g.apiTokenFile ?? process.env.FERRY_API_TOKEN_FILE;
  const token = tokenFile ? readSecretFile(tokenFile, 'API token') : process.env.FERRY_API_TOKEN;
  if (!token) throw new FerryError('invalid', `${url} needs a token: set FERRY_API_TOKEN or --api-token-file FILE (make one on the ferryd host with \`ferry token create --role read|admin\`)`);
  const ca = g.apiCa ?? process.env.FERRY_API_CA;
  let caPem: Buffer | undefined;
  if (ca) {
    try {
      caPem = readFileSync(ca);
    } catch (err) {
      throw new FerryError('invalid', `cannot read the CA certificate ${ca}: ${errorMessage(err)}`);
    }
  }
  return { url, token, ...(caPem ? { ca: caPem } : {}) };
}

export function client(cmd: Command): ApiClient {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const remote = remoteApi(g);
  return new ApiClient(apiSocketPath(g), remote);
}

export function wantsJson(cmd: Command): boolean {
  return Boolean(cmd.optsWithGlobals<GlobalOpts>().json);
}

let pipeWatched = false;

export function print(text: string): void {
  if (!pipeWatched) {
    // A reader that stops early (`ferry volume ls -q | head -1`) closes the pipe: the command ends quietly, as
    // other command-line tools do, instead of an EPIPE stack trace
    pipeWatched = true;
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      // a full disk or a failed device (`> /dev/full`): what the command did is done, its output is not
      process.stderr.write(`ferry: could not write the output (${err.code ?? 'error'}: ${errorMessage(err)}); the command itself completed\n`);
      process.exit(1);
    });
  }
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

/** The stable code of a failure (a FerryError's, or the API's answer), `internal` for anything else. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (err instanceof FerryError || err instanceof ApiError) ? code : 'internal';
}

/** A failure as told on stderr: `ferry: MESSAGE`, or with --json `{"error": {"code", "message"}}`. */
export function errorLine(code: string, message: string, json: boolean): string {
  return json ? JSON.stringify({ error: { code, message } }) + '\n' : `ferry: ${message}\n`;
}

/** Tell one item's failure of a command that goes on with the others (`volume rm A B`). */
export function printItemError(cmd: Command, err: unknown): void {
  process.stderr.write(errorLine(errorCode(err), errorMessage(err), wantsJson(cmd)));
}

/**
 * Warn on stderr when Docker's store does not hold a volume just made (its name held for another driver):
 * the volume is made all the same, and a script reading the name on stdout still gets only it. An engine
 * that did not answer is not warned of: ferryd registers the volume once it does.
 */
export function warnUnregistered(r: DockerRegistration | undefined): void {
  if (r && !r.registered && !r.retrying) process.stderr.write(`ferry: warning: ${r.reason ?? "Docker's store does not hold the volume"}\n`);
}

export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** Collect repeated `-o key=value` flags into an object; a malformed pair is a usage error. */
export function keyValue(what: string) {
  return (pair: string, acc: Record<string, string> = {}): Record<string, string> => {
    const i = pair.indexOf('=');
    if (i <= 0) throw usageError(`${what} ${JSON.stringify(pair)} must be written key=value`);
    return { ...acc, [pair.slice(0, i)]: pair.slice(i + 1) };
  };
}

export const enc = encodeURIComponent;

