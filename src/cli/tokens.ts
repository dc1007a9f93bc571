/** The `ferry token` commands. */
import { Command, Option } from 'commander';
import { client, enc, print, printItemError, printJson, wantsJson } from './common.js';
import { ago, table } from './format.js';
import type { TokenInfo } from '../api/tokens.js';

/** `ferry token`: bearer tokens for the control API over TCP (--api-listen). Managed on the host only. */
export function registerTokenCommands(program: Command): void {
  const token = program
    .command('token')
    .description('API tokens for the control API over TCP (ferryd --api-listen): create, list, remove')
    .addHelpText('after', '\nTokens are managed on the ferryd host only (this goes through the root-only unix\nsocket). A client sends its token as "Authorization: Bearer TOKEN". read tokens\ncan only read (GET, /metrics); admin tokens can do everything the CLI does,\nexcept managing tokens.');

  token
    .command('create')
    .description('create a token and print it (once: only its hash is kept)')
    .addOption(new Option('--role <role>', 'read: look only (GET routes, /metrics); admin: change things too').choices(['read', 'admin']).makeOptionMandatory())
    .option('--name <name>', 'a name to list and remove it by (default ROLE-RANDOM)')
    .action(async (opts: { role: 'read' | 'admin'; name?: string }, cmd: Command) => {
      const t = await client(cmd).call<TokenInfo & { token: string }>('POST', '/v1/tokens', { role: opts.role, ...(opts.name !== undefined ? { name: opts.name } : {}) });
      if (wantsJson(cmd)) return printJson(t);
      print(t.token);
      process.stderr.write(`token ${t.name} (${t.role}) created. It is shown this once: store it now (ferryd keeps only its hash).\n`);
    });

  token
    .command('ls')
    .alias('list')
    .description('list tokens: name, role, created, last used (never the secret)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { tokens } = await client(cmd).call<{ tokens: TokenInfo[] }>('GET', '/v1/tokens');
      if (wantsJson(cmd)) return printJson(tokens);
      print(table(['NAME', 'ROLE', 'CREATED', 'LAST USED'], tokens.map((t) => [t.name, t.role, ago(t.createdAt), t.lastUsedAt ? ago(t.lastUsedAt) : 'never'])));
    });

  token
    .command('rm')
    .alias('remove')
    .description('remove tokens: requests with them are refused at once')
    .argument('<names...>', 'token names (from `ferry token ls`)')
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      const api = client(cmd);
      const removed: TokenInfo[] = [];
      let failed = 0;
      for (const name of names) {
        try {
          removed.push((await api.call<{ removed: TokenInfo }>('DELETE', `/v1/tokens/${enc(name)}`)).removed);
          if (!wantsJson(cmd)) print(name);
        } catch (err) {
          failed++;
          printItemError(cmd, err);
        }
      }
      if (wantsJson(cmd)) printJson(removed);
      if (failed) process.exitCode = 1;
    });
}
