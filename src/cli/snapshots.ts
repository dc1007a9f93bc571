/** The `ferry snapshot` and history commands (commit, log, branch, checkout, reset). */
import type { Command } from 'commander';
import { client, enc, print, printJson, wantsJson } from './common.js';
import { checkVolumeName } from '../volumes/names.js';
import { ago, bytes, table, tableWidth } from './format.js';
import type { Snapshot } from '../wire/types.js';
import { usageError } from '../util/errors.js';
import type { SnapshotRecord } from '../snapshots/service.js';
import { COMMIT_NEEDS_MESSAGE } from '../snapshots/history.js';
import { follow } from './progress.js';

/** Snapshots ferry names itself: a backup's base (origin backup), commits and saved working data (origin history). */
const generated = (s: Snapshot) => s.origin === 'backup' || s.origin === 'history';
const kindText = (s: Snapshot) => (s.origin === 'schedule' ? 'scheduled' : s.origin === 'backup' ? 'backup base' : s.kind);

const shortTime = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
const consistencyText: Record<Snapshot['consistency'], string> = {
  crash: 'crash-consistent',
  'file-by-file': 'file by file, while in use (--pause for one instant)',
  paused: 'containers paused',
  exec: 'after --exec',
};

function snapshotLines(s: SnapshotRecord): string {
  const rows: Array<[string, string]> = [
    ['ID', s.id],
    ['Name', s.name],
    ['Volume', s.volume],
    ['Kind', s.kind + (s.origin === 'schedule' ? ' (scheduled)' : '')],
    ['Created', `${s.createdAt} (${ago(s.createdAt)}) on ${s.node}`],
    ['Method', `${s.method}, ${s.durationMs} ms`],
    ['Consistency', consistencyText[s.consistency] ?? s.consistency],
  ];
  if (s.stats.files !== undefined) rows.push(['Files', `${s.stats.files} (${s.stats.linked ?? 0} shared with the previous snapshot, ${s.stats.copied ?? 0} copied, ${bytes(s.stats.copiedBytes)})`]);
  if (s.message !== undefined) rows.push(['Message', s.message]);
  if (s.parent) rows.push(['Parent', s.parent]);
  if (s.branch) rows.push(['Branch', s.branch]);
  return rows.map(([k, v]) => `${(k + ':').padEnd(13)}${v}`).join('\n');
}

export function registerSnapshotCommands(program: Command): void {
  const snap = program.command('snapshot').description('read-only point-in-time copies of a volume: create, list, inspect, remove, restore');

  snap
    .command('create')
    .description('take a snapshot of a volume (crash-consistent; --pause or --exec for application consistency)')
    .argument('<volume>', 'volume name')
    .option('--name <name>', 'a name for the snapshot (default: its UTC time)')
    .option('--pause', 'pause the containers using the volume for the instant of the snapshot')
    .option('--exec <command>', 'first run this shell command in each running container using the volume (e.g. a database flush); a failure aborts')
    .option('--no-wait', 'print the job id and return at once (follow it with `ferry job wait ID`)')
    .addHelpText('after', '\nExamples:\n  ferry snapshot create db --name before-upgrade\n  ferry snapshot create db --pause\n  ferry snapshot create db --exec "redis-cli save"')
    .action(async (volume: string, o: { name?: string; pause?: boolean; exec?: string; wait: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      const api = client(cmd);
      // a job, so that its progress shows here (on stderr) and in the Hub while it runs
      const job = await api.startSnapshot(volume, { ...(o.name ? { name: o.name } : {}), ...(o.pause ? { pause: true } : {}), ...(o.exec ? { exec: o.exec } : {}) });
      if (!o.wait) return wantsJson(cmd) ? printJson(job) : print(job.id);
      const s = (await follow(api, job, { quiet: wantsJson(cmd) })).result as SnapshotRecord;
      if (wantsJson(cmd)) return printJson(s);
      print(`${s.id} ${s.name} (${s.method}, ${s.durationMs} ms)`);
      // asked to flush or pause a workload that does not run: say so, rather than let a user believe it happened
      if ((o.exec || o.pause) && (s.consistency === 'crash' || s.consistency === 'file-by-file')) process.stderr.write(`(no running container uses ${volume}: ${[o.exec && '--exec ran nowhere', o.pause && '--pause paused nothing'].filter(Boolean).join(', ')}; the snapshot is of the data as it was)\n`);
    });

  snap
    .command('ls')
    .alias('list')
    .description('list the snapshots of a volume, oldest first (scheduled ones included; the ones ferry made for backups and history only with --all)')
    .argument('<volume>', 'volume name')
    .option('-a, --all', 'also the snapshots ferry made itself: backup bases, commits, saved working data of branches')
    .action(async (volume: string, o: { all?: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      // every snapshot, worktrees too: --json lists them all, the table counts the ones it leaves out
      const { snapshots } = await client(cmd).snapshots(volume, { all: true });
      if (wantsJson(cmd)) return printJson(snapshots);
      const shown = o.all ? snapshots : snapshots.filter((s) => !generated(s));
      print(table(['ID', 'NAME', 'KIND', 'CREATED', 'METHOD', 'TOOK'], shown.map((s) => [s.id, s.name, kindText(s), shortTime(s.createdAt), s.method, `${s.durationMs} ms`]), { width: tableWidth() }));
      const hidden = snapshots.length - shown.length;
      if (hidden) process.stderr.write(`(${hidden} made by ferry for backups and history not shown; --all lists them)\n`);
    });

  snap
    .command('inspect')
    .description('show one snapshot')
    .argument('<volume>', 'volume name')
    .argument('<snapshot>', 'snapshot name, id or unique id prefix')
    .action(async (volume: string, ref: string, _o: unknown, cmd: Command) => {
      checkVolumeName(volume);
      const s = await client(cmd).call<SnapshotRecord>('GET', `/v1/volumes/${enc(volume)}/snapshots/${enc(ref)}`);
      if (wantsJson(cmd)) return printJson(s);
      print(snapshotLines(s));
    });

  snap
    .command('rm')
    .alias('remove')
    .description('delete a snapshot')
    .argument('<volume>', 'volume name')
    .argument('<snapshot>', 'snapshot name, id or unique id prefix')
    .action(async (volume: string, ref: string, _o: unknown, cmd: Command) => {
      checkVolumeName(volume);
      const r = await client(cmd).deleteSnapshot(volume, ref);
      if (wantsJson(cmd)) return printJson(r.removed);
      print(`removed ${r.removed.id} ${r.removed.name}`);
    });

  snap
    .command('restore')
    .description('make the volume\'s data the snapshot\'s (refused while containers use it, unless --restart-containers)')
    .argument('<volume>', 'volume name')
    .argument('<snapshot>', 'snapshot name, id or unique id prefix')
    .option('--restart-containers', 'stop the containers using the volume, restore, start them again')
    .option('--force', 'go on although a node that stopped sending heartbeats less than 10 minutes ago had the volume mounted (its containers may still write)')
    .action(async (volume: string, ref: string, o: { restartContainers?: boolean; force?: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      const r = await client(cmd).restoreSnapshot(volume, ref, { restartContainers: Boolean(o.restartContainers), force: Boolean(o.force) });
      if (wantsJson(cmd)) return printJson(r.restored);
      print(`${volume} restored to ${r.restored.id} ${r.restored.name}`);
    });

  program
    .command('commit')
    .description('record the volume\'s current data as a commit on its current branch')
    .argument('<volume>', 'volume name')
    .requiredOption('-m, --message <message>', 'what changed')
    .action(async (volume: string, o: { message: string }, cmd: Command) => {
      checkVolumeName(volume);
      if (!o.message.trim()) throw usageError(COMMIT_NEEDS_MESSAGE);
      const c = await client(cmd).call<SnapshotRecord>('POST', `/v1/volumes/${enc(volume)}/commits`, { message: o.message });
      if (wantsJson(cmd)) return printJson(c);
      print(`[${c.branch} ${c.id}] ${c.message}`);
    });

  program
    .command('log')
    .description('the commits of the volume\'s current branch, or of BRANCH, newest first')
    .argument('<volume>', 'volume name')
    .argument('[branch]', 'another branch than the current one')
    .action(async (volume: string, branch: string | undefined, _o: unknown, cmd: Command) => {
      checkVolumeName(volume);
      const l = await client(cmd).log(volume, branch);
      if (wantsJson(cmd)) return printJson(l);
      if (l.commits.length === 0) return print(`branch ${l.branch} has no commits yet; \`ferry commit ${volume} -m MESSAGE\` makes one`);
      // a message's first line, as `git log --oneline` (a newline or a tab would break the table's rows)
      const subject = (m = '') => m.trim().split('\n')[0]!.replace(/[\t\r\x00-\x1f\x7f]/g, ' ');
      print(
        table(
          ['COMMIT', 'TIME', 'NODE', 'SIZE', 'MESSAGE'],
          l.commits.map((c) => [c.id, shortTime(c.createdAt), c.node, c.stats.copiedBytes !== undefined ? `+${bytes(c.stats.copiedBytes)}` : '-', subject(c.message)]),
          { width: tableWidth(), shrink: ['MESSAGE'] },
        ),
      );
    });

  program
    .command('branch')
    .description('list the volume\'s branches, create NAME at the current commit, or delete NAME (-d)')
    .usage('[-d|-D] <volume> [name]')
    .argument('<volume>', 'volume name')
    .argument('[name]', 'branch name')
    .option('-d, --delete', 'delete the branch; refused while it holds commits on no other branch, or uncommitted data')
    .option('-D', 'delete the branch anyway: its uncommitted data goes, its commits stay as snapshots on no branch')
    .addHelpText('after', '\nA deleted branch\'s commits are not removed: `ferry snapshot ls VOL --all`\nlists them, `ferry snapshot rm VOL ID` removes one.')
    .action(async (volume: string, name: string | undefined, o: { delete?: boolean; D?: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      const api = client(cmd);
      if (o.delete || o.D) {
        if (!name) throw usageError(`which branch? ferry branch ${o.D ? '-D' : '-d'} ${volume} NAME`);
        const d = await api.deleteBranch(volume, name, { force: Boolean(o.D) });
        if (wantsJson(cmd)) return printJson(d);
        const lines = [`deleted branch ${d.name} of ${volume} (was ${d.tip ?? 'no commit'})`];
        if (d.droppedWorktree) lines.push(`its uncommitted data (snapshot ${d.droppedWorktree}) was removed`);
        if (d.orphaned.length) {
          const ids = d.orphaned.length > 4 ? `${d.orphaned.slice(0, 3).join(' ')} and ${d.orphaned.length - 3} more` : d.orphaned.join(' ');
          lines.push(`${d.orphaned.length} commit${d.orphaned.length > 1 ? 's are' : ' is'} on no branch now, kept as snapshots (${ids}):`, `\`ferry snapshot ls ${volume} --all\` lists them, \`ferry snapshot rm ${volume} ID\` removes one`);
        }
        return print(lines.join('\n'));
      }
      if (name) {
        const b = await api.call<{ name: string; tip: string | null }>('POST', `/v1/volumes/${enc(volume)}/branches`, { name });
        return wantsJson(cmd) ? printJson(b) : print(`branch ${b.name} at ${b.tip ?? '(no commit)'}`);
      }
      const r = await api.call<{ current: string; branches: Array<{ name: string; tip: string | null }> }>('GET', `/v1/volumes/${enc(volume)}/branches`);
      if (wantsJson(cmd)) return printJson(r);
      print(r.branches.map((b) => `${b.name === r.current ? '*' : ' '} ${b.name.padEnd(20)} ${b.tip ?? '(no commit)'}`).join('\n'));
    });

  program
    .command('checkout')
    .description('switch the volume to another branch (its saved working data or tip); -b creates the branch from the current commit')
    .usage('[-b] <volume> <branch>')
    .argument('<volume>', 'volume name')
    .argument('<branch>', 'branch name')
    .option('-b', 'create the branch and switch to it, keeping the current data')
    .option('--restart-containers', 'stop the containers using the volume, switch, start them again')
    .option('--force', 'go on although a node that stopped sending heartbeats less than 10 minutes ago had the volume mounted (its containers may still write)')
    .addHelpText('after', '\nThe working data of the branch you leave is kept, so switching back returns it,\ncommitted or not.')
    .action(async (volume: string, branch: string, o: { b?: boolean; restartContainers?: boolean; force?: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      const r = await client(cmd).checkout(volume, branch, { create: Boolean(o.b), restartContainers: Boolean(o.restartContainers), force: Boolean(o.force) });
      if (wantsJson(cmd)) return printJson(r);
      print(`${volume} is on branch ${r.branch} (${r.commit ?? 'no commit'})`);
    });

  program
    .command('reset')
    .description('make the volume\'s data that of REF and point the current branch at it')
    .argument('<volume>', 'volume name')
    .option('--hard <ref>', 'commit id or unique prefix, branch, HEAD, HEAD~N, HEAD^')
    .option('--restart-containers', 'stop the containers using the volume, reset, start them again')
    .option('--force', 'go on although a node that stopped sending heartbeats less than 10 minutes ago had the volume mounted (its containers may still write)')
    .action(async (volume: string, o: { hard?: string; restartContainers?: boolean; force?: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      if (!o.hard) throw usageError('only hard resets exist: ferry reset VOL --hard REF');
      const r = await client(cmd).reset(volume, o.hard, { restartContainers: Boolean(o.restartContainers), force: Boolean(o.force) });
      if (wantsJson(cmd)) return printJson(r.commit);
      print(`HEAD is now at ${r.commit.id} ${r.commit.message ?? ''}`.trimEnd());
    });
}
