/** `ferry doctor`: what is wrong with this host's Ferry, one line per check, and what to do about it. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiError, type ApiClient } from './client.js';
import { client, print, wantsJson } from './common.js';
import { problems, problem, ok, type DoctorCheck } from '../doctor/check.js';
import { errorMessage } from '../util/errors.js';

/** What the local checks need when ferryd does not answer (from the config file and flags). */
export interface LocalSettings {
  dataDir: string;
  pluginSocket: string;
  pools: Array<{ name: string; path: string; shared: boolean }>;
}

export interface DoctorInput {
  api: ApiClient;
  /** Read the settings ferryd would use (only called when ferryd does not answer on the unix socket). */
  settings: () => Promise<LocalSettings>;
  json?: boolean;
  width?: number;
}

export interface DoctorResult {
  output: string;
  exitCode: number;
  checks: DoctorCheck[];
}

const LABEL: Record<DoctorCheck['state'], string> = { ok: 'ok', problem: 'PROBLEM', skipped: 'skipped' };
const INDENT = 9;

/** Break `text` into lines of at most `width` columns, every line after the first indented; overlong words are cut. */
export function wrap(first: string, text: string, width: number): string[] {
  const room = width - INDENT;
  const lines: string[] = [];
  let cur = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > room) {
      if (cur) lines.push(cur), (cur = '');
      lines.push(word.slice(0, room));
      word = word.slice(room);
    }
    if (cur && cur.length + 1 + word.length > room) lines.push(cur), (cur = '');
    cur = cur ? `${cur} ${word}` : word;
  }
  if (cur || lines.length === 0) lines.push(cur);
  return lines.map((l, i) => (i === 0 ? first.padEnd(INDENT) : ' '.repeat(INDENT)) + l);
}

/** One entry per check (ok / PROBLEM ... Fix: ... / skipped), wrapped to `width`, and a last line that sums up. */
export function formatChecks(checks: DoctorCheck[], width = 80): string {
  const lines = checks.flatMap((c) => wrap(LABEL[c.state], c.fix ? `${c.message}. Fix: ${c.fix}` : c.message, width));
  const n = problems(checks).length;
  const skippedCount = checks.filter((c) => c.state === 'skipped').length;
  lines.push('');
  lines.push(...wrap('', n ? `${n} problem${n === 1 ? '' : 's'} found.` : `All well: ${checks.length - skippedCount} checks passed${skippedCount ? `, ${skippedCount} skipped` : ''}.`, width).map((l) => l.trimStart()));
  return lines.join('\n');
}

interface StatusFacts {
  runsAs?: string;
  mountRoot?: string;
  version: string;
  pid: number;
  node: string;
  uptimeSeconds: number;
}

/** Without a ferryd to ask: the lock's holder, sockets left behind, the pool directories. */
async function localChecks(input: DoctorInput): Promise<DoctorCheck[]> {
  let s: LocalSettings;
  try {
    s = await input.settings();
  } catch (err) {
    return [problem('config', `cannot read ferryd's settings: ${errorMessage(err)}`, 'fix the config file (ferryd refuses to start with it too)')];
  }
  // loaded here, when ferryd does not answer: the other commands start without its modules
  const { deadSocketCheck, lockCheck, poolCheck } = await import('../doctor/local.js');
  const out = [lockCheck(s.dataDir)];
  out.push(await deadSocketCheck('plugin-socket', s.pluginSocket, 'plugin socket', 'Docker stalls about 15 s on every call to it, then fails'));
  out.push(await deadSocketCheck('api-socket', input.api.socketPath, 'API socket', 'the CLI cannot reach ferryd there'));
  for (const p of s.pools) out.push(await poolCheck(p));
  return out;
}

/** Run every check; returns what to print and the exit code (1 on any problem), never exits itself. */
export async function doctor(input: DoctorInput): Promise<DoctorResult> {
  const checks: DoctorCheck[] = [];
  const where = input.api.remote ? input.api.remote.url : input.api.socketPath;
  try {
    const st = await input.api.call<StatusFacts>('GET', '/v1/status');
    const how = st.runsAs === 'managed-plugin' ? `, runs as a managed Docker plugin, volumes under its propagatedMount ${st.mountRoot ?? ''}` : ', runs as a host daemon';
    checks.push(ok('ferryd', `ferryd ${st.version} answers on ${where} (pid ${st.pid}, node ${st.node}, up ${Math.round(st.uptimeSeconds)}s${how})`));
    try {
      checks.push(...(await input.api.call<{ checks: DoctorCheck[] }>('GET', '/v1/doctor')).checks);
    } catch (err) {
      checks.push(problem('doctor', `ferryd could not run its checks: ${errorMessage(err)}`, 'see the log of ferryd'));
    }
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'unreachable')) {
      checks.push(problem('ferryd', `ferryd at ${where} refused: ${errorMessage(err)}`));
    } else {
      checks.push(problem('ferryd', `ferryd is not running: nothing answers on ${where}`, input.api.remote ? 'start ferryd there with --api-listen' : 'start it (`ferry daemon`, or `systemctl start ferryd`; a managed plugin: `docker plugin enable ferry`); if it runs, point --api-socket at its socket (a managed plugin: `ferry --plugin`)'));
      if (!input.api.remote) checks.push(...(await localChecks(input)));
    }
  }
  const exitCode = problems(checks).length ? 1 : 0;
  const output = input.json ? JSON.stringify({ ok: exitCode === 0, problems: problems(checks).length, checks }, null, 2) : formatChecks(checks, input.width ?? 80);
  return { output, exitCode, checks };
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this host\'s Ferry: ferryd and its lock, the plugin socket and Docker, pools, shared pools (mount, clocks, link(2)), orphans; exit 1 on any problem')
    .option('-c, --config <file>', 'ferryd\'s config file, for the checks made when ferryd does not answer (default /etc/ferry/ferry.yaml when it exists)')
    .option('--data-dir <dir>', 'ferryd\'s data dir, for the same checks')
    .option('--plugin-socket <path>', 'ferryd\'s plugin socket, for the same checks')
    .action(async (opts: { config?: string; dataDir?: string; pluginSocket?: string }, cmd: Command) => {
      const settings = async (): Promise<LocalSettings> => {
        const { loadConfig } = await import('../daemon/config.js');
        // relative paths from the working directory, as `ferry daemon` takes them
        const c = await loadConfig({ config: opts.config, dataDir: opts.dataDir && resolve(opts.dataDir), pluginSocket: opts.pluginSocket && resolve(opts.pluginSocket) });
        return { dataDir: c.dataDir, pluginSocket: c.pluginSocket, pools: [{ name: 'local', path: c.dataDir, shared: false }, ...Object.entries(c.pools).map(([name, p]) => ({ name, path: p.path, shared: p.shared }))] };
      };
      const r = await doctor({ api: client(cmd), settings, json: wantsJson(cmd) });
      print(r.output);
      process.exitCode = r.exitCode;
    });
}
