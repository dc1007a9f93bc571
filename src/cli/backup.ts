/** The `ferry backup` commands (init, create, ls, inspect, restore, rm, verify, prune) and `ferry job` (ls, wait). */
import type { Command } from 'commander';
import { client, enc, keyValue, print, printJson, wantsJson, warnUnregistered } from './common.js';
import { checkVolumeName } from '../volumes/names.js';
import { ago, bytes, table, tableWidth } from './format.js';
import { follow, percent, phaseName } from './progress.js';
import { FerryError } from '../util/errors.js';
import type { JobInfo } from '../jobs/jobs.js';
import type { Backup, BackupList, RestoreResult } from '../wire/types.js';

/** The PROGRESS column of `job ls`: "42% of 284 MiB", the phase while no total is known, "100%" once done. */
function jobProgress(j: JobInfo): string {
  const pct = percent(j.progress, j.state === 'running');
  if (j.state === 'running') return `${phaseName(j.progress)}${pct ? ` ${pct} of ${bytes(j.progress.bytesTotal)}` : j.progress.bytesDone ? ` ${bytes(j.progress.bytesDone)}` : ''}`;
  return pct ? `${pct} of ${bytes(j.progress.bytesTotal)}` : j.progress.bytesDone ? bytes(j.progress.bytesDone) : j.progress.filesDone ? `${j.progress.filesDone} files` : '-';
}

function target(opts: { target?: string }): string {
  if (!opts.target) throw new FerryError('invalid', 'name the backup target with --target NAME (from backupTargets in ferryd\'s config) or --target URL (file:///path, s3://bucket/prefix)');
  return opts.target;
}

/** What a backup's `consistency:` tag says of the snapshot it read (backups made before the tag have none). */
const CONSISTENCY: Record<string, string> = {
  crash: 'one instant (crash-consistent: as after a power cut)',
  'file-by-file': 'the snapshot it read was copied file by file while containers wrote to the volume: each file whole, two files maybe from different instants',
  paused: 'one instant, its containers paused',
  exec: 'after --exec ran in its containers',
};

function consistencyRow(tags: string[]): Array<[string, string]> {
  const c = tags.find((t) => t.startsWith('consistency:'))?.slice('consistency:'.length);
  return c ? [['Data', CONSISTENCY[c] ?? c]] : [];
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('incremental, deduplicated, encrypted backups of volumes to a directory (NFS) or S3');

  backup
    .command('init')
    .description('make a new backup repository at a target')
    .requiredOption('-t, --target <name-or-url>', 'configured target name, or file:///path, s3://bucket/prefix')
    .option('--no-encryption', 'store the data unencrypted (only when asked for)')
    .action(async (opts: { target: string; encryption: boolean }, cmd: Command) => {
      const r = await client(cmd).call<{ target: string; encrypted: boolean }>('POST', '/v1/backups/init', { target: target(opts), ...(opts.encryption ? {} : { encryption: 'none' }) });
      if (wantsJson(cmd)) printJson(r);
      else print(`initialised ${r.encrypted ? 'an encrypted' : 'an UNENCRYPTED'} repository at ${r.target}`);
    });

  backup
    .command('create')
    .description('back up a volume from a snapshot made for it (see `ferry snapshot create` for how consistent that is); prints the backup URL')
    .argument('<volume>', 'volume name')
    .requiredOption('-t, --target <name-or-url>', 'configured target name, or file:///path, s3://bucket/prefix')
    .option('-s, --snapshot <snapshot>', 'back up this snapshot (default: a new one, made for the backup)')
    .option('--no-wait', 'print the job id and return at once')
    .addHelpText('after', '\nExample:\n  ferry backup create db --target nas\n  ferry volume create db-copy \\\n    -o backup="file:///mnt/backups/ferry?backup=ID&volume=db"')
    .action(async (volume: string, opts: { target: string; snapshot?: string; wait: boolean }, cmd: Command) => {
      checkVolumeName(volume);
      const api = client(cmd);
      const job = await api.call<JobInfo>('POST', `/v1/volumes/${enc(volume)}/backups`, { target: target(opts), ...(opts.snapshot ? { snapshot: opts.snapshot } : {}) });
      if (!opts.wait) return wantsJson(cmd) ? printJson(job) : print(job.id);
      const done = await follow(api, job, { quiet: wantsJson(cmd) });
      const info = done.result as Backup;
      if (wantsJson(cmd)) return printJson(info);
      print(info.url); // what happened is on stderr, the last line of the progress
      if (info.tags.includes('consistency:file-by-file')) process.stderr.write(`(${CONSISTENCY['file-by-file']}; for a database, back up a snapshot taken with --exec or --pause: --snapshot S)\n`);
    });

  backup
    .command('ls')
    .alias('list')
    .description('list the backups in a target')
    .requiredOption('-t, --target <name-or-url>', 'configured target name, or file:///path, s3://bucket/prefix')
    .option('--volume <name>', 'only the backups of this volume')
    .option('-q, --quiet', 'print the full backup URLs only (the table shortens them to fit)')
    .action(async (opts: { target: string; volume?: string; quiet?: boolean }, cmd: Command) => {
      const q = new URLSearchParams({ target: target(opts), ...(opts.volume ? { volume: opts.volume } : {}) });
      const r = await client(cmd).call<BackupList>('GET', `/v1/backups?${q}`);
      if (wantsJson(cmd)) return printJson(r.backups);
      if (opts.quiet) return r.backups.forEach((b) => print(b.url));
      print(table(['ID', 'VOLUME', 'NODE', 'TIME', 'FILES', 'SIZE', 'ADDED', 'URL'], r.backups.map((b) => [b.id.slice(0, 12), b.volume, b.node, ago(b.time), String(b.files), bytes(b.bytes), bytes(b.bytesAdded), b.url]), { width: tableWidth(), shrink: ['URL'] }));
    });

  backup
    .command('inspect')
    .description('show one backup')
    .argument('<url>', 'backup URL (…?backup=ID&volume=NAME)')
    .action(async (url: string, _opts: unknown, cmd: Command) => {
      const b = await client(cmd).call<Backup & { tree: { entries: number; chunks: number } }>('GET', `/v1/backups/inspect?${new URLSearchParams({ url })}`);
      if (wantsJson(cmd)) return printJson(b);
      const rows: Array<[string, string]> = [
        ['ID', b.id],
        ['URL', b.url],
        ['Volume', b.volume],
        ['Node', b.node],
        ['Time', `${b.time} (${ago(b.time)})`],
        // a schedule's backups are the ones its keep policy thins; a user's go only by `backup rm`
        ['Made by', b.tags.includes('scheduled') ? 'a schedule (thinned by its keep policy)' : 'a user (a schedule never removes it)'],
        ['Snapshot', b.snapshot ?? '-'],
        ...consistencyRow(b.tags),
        ['Parent', b.parent ?? '-'],
        ['Files', `${b.files} files, ${b.dirs} directories, ${bytes(b.bytes)}`],
        ['Added', `${bytes(b.bytesNew)} new data, ${bytes(b.bytesAdded)} written to the target`],
        ['Took', `${(b.durationMs / 1000).toFixed(1)}s`],
      ];
      print(rows.map(([k, v]) => `${(k + ':').padEnd(10)}${v}`).join('\n'));
    });

  backup
    .command('restore')
    .description('make a new volume from a backup (on any node that can reach the target)')
    .argument('<url>', 'backup URL (…?backup=ID&volume=NAME)')
    .argument('<new-volume>', 'name of the volume to create')
    .option('-o, --opt <key=value>', 'volume option for the new volume (pool=, access=, ...), repeatable', keyValue('option'))
    .action(async (url: string, volume: string, opts: { opt?: Record<string, string> }, cmd: Command) => {
      checkVolumeName(volume);
      const api = client(cmd);
      const job = await api.restoreBackup(url, volume, opts.opt ?? {});
      const done = await follow(api, job, { quiet: wantsJson(cmd) });
      if (wantsJson(cmd)) printJson(done.result);
      else print(volume);
      warnUnregistered((done.result as RestoreResult | undefined)?.registration);
    });

  backup
    .command('rm')
    .alias('remove')
    .description('forget a backup (its data is deleted by the next prune)')
    .argument('<urls...>', 'backup URLs')
    .action(async (urls: string[], _opts: unknown, cmd: Command) => {
      const api = client(cmd);
      const removed: string[] = [];
      for (const url of urls) {
        // (the answer is the backup's full URL: what was removed, whatever prefix of its id was typed)
        const r = await api.deleteBackup(url);
        removed.push(r.removed);
        if (!wantsJson(cmd)) print(`removed ${r.removed}`);
      }
      if (wantsJson(cmd)) printJson({ removed });
    });

  backup
    .command('prune')
    .description('delete the data no backup refers to any more (takes the repository\'s exclusive lock)')
    .requiredOption('-t, --target <name-or-url>', 'configured target name, or file:///path, s3://bucket/prefix')
    .action(async (opts: { target: string }, cmd: Command) => {
      const api = client(cmd);
      const done = await follow(api, await api.call<JobInfo>('POST', '/v1/backups/prune', { target: target(opts) }), { quiet: wantsJson(cmd) });
      const r = done.result as { packsRemoved: number; bytesRemoved: number; packsKept: number };
      if (wantsJson(cmd)) return printJson(r);
      print(`removed ${r.packsRemoved} packs (${bytes(r.bytesRemoved)}), kept ${r.packsKept}`);
    });

  backup
    .command('verify')
    .description('check a repository: its structure always, every chunk\'s hash with --read-data')
    .requiredOption('-t, --target <name-or-url>', 'configured target name, or file:///path, s3://bucket/prefix')
    .option('--read-data', 'read every pack and check every chunk (slow: reads the whole repository)')
    .action(async (opts: { target: string; readData?: boolean }, cmd: Command) => {
      const api = client(cmd);
      const done = await follow(api, await api.call<JobInfo>('POST', '/v1/backups/verify', { target: target(opts), readData: opts.readData ?? false }), { quiet: wantsJson(cmd) });
      const r = done.result as { backups: number; packs: number; chunks: number; bytesRead: number };
      if (wantsJson(cmd)) return printJson(r);
      print(`no problems: ${r.backups} backups, ${r.packs} packs, ${r.chunks} chunks${opts.readData ? `, ${bytes(r.bytesRead)} read and checked` : ' (structure only; --read-data checks every chunk)'}`);
    });

  const job = program.command('job').description('long operations (snapshots, backups, restores, verify, prune) that ferryd runs');
  job
    .command('ls')
    .alias('list')
    .description('running and recent jobs with their progress')
    .action(async (_opts: unknown, cmd: Command) => {
      const { jobs } = await client(cmd).call<{ jobs: JobInfo[] }>('GET', '/v1/jobs');
      if (wantsJson(cmd)) return printJson(jobs);
      print(
        table(
          ['ID', 'KIND', 'VOLUME', 'TARGET', 'STATE', 'PROGRESS', 'STARTED'],
          jobs.map((j) => [j.id, j.kind, j.volume ?? '-', j.target ?? '-', j.state === 'failed' ? `failed: ${j.error?.message.split('\n')[0]}` : j.state, jobProgress(j), ago(j.startedAt)]),
          { width: tableWidth(), shrink: ['STATE', 'TARGET'] },
        ),
      );
    });
  job
    .command('wait')
    .description('follow a job until it ends (exit 1 if it failed)')
    .argument('<id>', 'job id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const api = client(cmd);
      const done = await follow(api, await api.call<JobInfo>('GET', `/v1/jobs/${enc(id)}`), { quiet: wantsJson(cmd) });
      if (wantsJson(cmd)) printJson(done);
      else print(`${done.kind} ${done.state}`);
    });
}
