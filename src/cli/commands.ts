/** The `ferry volume` commands (create, ls, inspect, resize, rm, trash, purge, undelete) and `ferry status`. */
import { Command } from 'commander';
import { client, enc, keyValue, print, printItemError, printJson, wantsJson, warnUnregistered } from './common.js';
import { checkVolumeName } from '../volumes/names.js';
import { ago, bytes, table, tableWidth } from './format.js';
import { VOLUME_OPTION_NAMES } from '../wire/volume-options.js';
import type { DockerTold, TrashInfo, VolumeInfo } from '../volumes/service.js';
import type * as W from '../wire/types.js';
import type { Attachment as AttachmentStatus } from '../wire/types.js';
import type { TrashUsage, VolumeSize, VolumeUsage } from '../wire/types.js';
import { sizeText } from '../util/size.js';
import { snapshotHolders } from '../wire/usage-text.js';


const maybeBytes = (n: number | null | undefined) => (n === null || n === undefined ? '-' : bytes(n));

/** The inspect lines of a volume's space: data (with the age of its walk), snapshots, trash. */
function usageRows(u: VolumeUsage): Array<[string, string]> {
  const snaps = u.snapshotBytes !== null ? `${bytes(u.snapshotBytes)} held only by its ${snapshotHolders(u)}` : `${snapshotHolders(u)}, space ${u.snapshotNote ?? 'not measured'}`;
  const total = u.dataBytes !== null && u.snapshotBytes !== null && u.trashBytes !== null ? [['Total', bytes(u.dataBytes + u.snapshotBytes + u.trashBytes)] as [string, string]] : [];
  return [
    ['Data', u.dataBytes === null ? 'not measured yet (`ferry volume inspect NAME --usage` measures now)' : `${bytes(u.dataBytes)} (measured ${ago(u.measuredAt!)})`],
    ['Snapshots', snaps],
    ['Trash', u.trashBytes === null ? 'not measured yet' : `${bytes(u.trashBytes)}${u.trashBytes ? ' (removed volumes of this name, until purged)' : ''}`],
    ...total,
  ];
}

/** "10 GiB, 3.2 MiB used (0%)": a volume's size limit and what counts against it, and a problem with it. */
function sizeRow(s: VolumeSize): string {
  const used = s.usedBytes === null ? 'use not counted' : `${bytes(s.usedBytes)} used (${Math.floor((100 * s.usedBytes) / s.limitBytes)}%)`;
  const enforced = s.enforcedBytes === s.limitBytes ? '' : `; ENFORCED: ${s.enforcedBytes === null ? 'none' : sizeText(s.enforcedBytes)}`;
  return `${sizeText(s.limitBytes)}, ${used}${enforced}${s.problem ? `\n            ${s.problem}` : ''}`;
}

/** "hostA(2) hostB(1)": live attachments of a volume across the cluster; expired ones marked. */
function attachedText(atts: AttachmentStatus[]): string {
  return atts.map((a) => `${a.node}(${a.mountIds.length})${a.alive ? '' : '[expired]'}`).join(' ') || '-';
}

/** Where the values of `volume inspect` start (after "Containers: "). */
const INDENT = ' '.repeat(12);

/** Two lines (an 80-column terminal): "backups @daily to nas, keep daily=7" and "next 2026-12-08 00:00 UTC (in 4 hours), last …". */
function scheduleText(s: W.VolumeSchedule): string {
  const at = (iso: string) => iso.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
  const what = `${s.kind === 'backup' ? `backups ${s.schedule} to ${s.target}` : `snapshots ${s.schedule}`}${s.keep ? `, keep ${s.keep}` : ''}${s.source === 'volume option' ? '' : ` (${s.source})`}`;
  const next = s.due ? 'a missed run is due now' : `next ${at(s.nextRun)} (${ago(s.nextRun)})`;
  return `${what}\n  ${INDENT}${next}${s.lastRun ? `, last ${at(s.lastRun)}` : ''}`;
}

export function registerCliCommands(program: Command): void {
  const volume = program.command('volume').description('create, list, inspect, remove and undelete volumes');

  volume
    .command('create')
    .description('create a volume (as `docker volume create -d ferry` does)')
    .argument('<name>', 'volume name: [a-zA-Z0-9][a-zA-Z0-9_.-]+')
    .option('-o, --opt <key=value>', `volume option, repeatable; accepted: ${VOLUME_OPTION_NAMES.join(', ')}`, keyValue('option'))
    .option('-l, --label <key=value>', 'label to keep with the volume, repeatable', keyValue('label'))
    .addHelpText(
      'after',
      [
        '',
        'Options for -o (the core ones; the others: README, "Volume options"):',
        '  pool=NAME   pool to create the volume in (default: the default pool)',
        '  access=rwx  in a shared pool: rwx many hosts read and write (default),',
        '              rwo one host at a time, rox read-only',
        '  uid=N       owner of the volume root',
        '  gid=N       group of the volume root',
        '  mode=0755   permissions of the volume root (octal)',
        '  size=10G    the most it may hold (K, M, G, T: powers of 1024; btrfs and',
        '              image pools, docs/quotas.md)',
        '  from=VOL@SNAPSHOT, backup=URL: start from a snapshot or a backup',
        '',
        'Example:',
        '  ferry volume create db-data -o uid=999 -o mode=0750 --label app=postgres',
      ].join('\n'),
    )
    .action(async (name: string, opts: { opt?: Record<string, string>; label?: Record<string, string> }, cmd: Command) => {
      checkVolumeName(name);
      const v = await client(cmd).call<W.VolumeCreated>('POST', '/v1/volumes', { name, options: opts.opt ?? {}, labels: opts.label ?? {} });
      if (wantsJson(cmd)) printJson(v);
      else print(v.name);
      warnUnregistered(v.registration);
    });

  volume
    .command('ls')
    .alias('list')
    .description('list volumes')
    .option('-q, --quiet', 'print names only')
    .action(async (opts: { quiet?: boolean }, cmd: Command) => {
      // --json prints every field (the full list); the table needs only the list's fields
      if (wantsJson(cmd)) return printJson((await client(cmd).volumes()).volumes);
      const { volumes } = await client(cmd).volumeSummaries();
      if (opts.quiet) return volumes.forEach((v) => print(v.name));
      print(
        table(
          ['NAME', 'POOL', 'ACCESS', 'MOUNTS', 'ATTACHED', 'DATA', 'SNAPSHOTS', 'CREATED'],
          volumes.map((v) => [v.name, v.pool, v.access, String(v.mounts), v.shared ? attachedText(v.attachments) : '-', maybeBytes(v.usage?.dataBytes), maybeBytes(v.usage?.snapshotBytes), ago(v.createdAt)]),
          { width: tableWidth(), shrink: ['ATTACHED', 'POOL'] },
        ),
      );
    });

  volume
    .command('inspect')
    .description('show everything about one volume: pool, mountpoint, options, labels, mounts and the containers using it')
    .argument('<name>', 'volume name')
    .option('--usage', 'measure its space now (walks the data) instead of showing the figures of the last background walk')
    .action(async (name: string, opts: { usage?: boolean }, cmd: Command) => {
      checkVolumeName(name);
      const v = await client(cmd).volume(name, { usage: Boolean(opts.usage) });
      if (wantsJson(cmd)) return printJson(v);
      const rows: Array<[string, string]> = [
        ['Name', v.name],
        ['Pool', v.pool],
        ['Mountpoint', v.mountpoint],
        ['Created', `${v.createdAt} (${ago(v.createdAt)}) on ${v.node}`],
        ['Options', Object.entries(v.options).map(([k, val]) => `${k}=${k === 'mode' ? '0' + Number(val).toString(8) : k === 'size' ? sizeText(Number(val)).replace(' ', '') : val}`).join(' ') || '-'],
        ...(v.size ? ([['Size', sizeRow(v.size)]] as Array<[string, string]>) : []),
        ['Labels', Object.entries(v.labels).map(([k, val]) => `${k}=${val}`).join(' ') || '-'],
        ...(v.docker
          ? ([['Docker', [`driver ${v.docker.driver ?? '?'}`, `labels ${Object.entries(v.docker.labels ?? {}).map(([k, x]) => `${k}=${x}`).join(' ') || '-'}`, `options ${Object.entries(v.docker.options ?? {}).map(([k, x]) => `${k}=${x}`).join(' ') || '-'}`].join('; ')]] as Array<[string, string]>)
          : []),
        ['Access', `${v.access}${v.shared ? ' (shared pool)' : ''}`],
        ['Mounts', `${v.mounts} on this node`],
        ...(v.shared ? ([['Attached', attachedText(v.attachments) + v.attachments.map((a) => (a.containers.length ? `\n            ${a.node}: ${a.containers.join(', ')}` : '')).join('')]] as Array<[string, string]>) : []),
        ['Containers', v.containers === null ? '(docker not reachable)' : v.containers.map((c) => `${c.name} (${c.state})`).join(', ') || '-'],
        ...(v.referencedElsewhere?.length ? ([['Referenced', v.referencedElsewhere.map((r) => `on node ${r.node} by ${r.containers.join(', ')}`).join(`\n${INDENT}`)]] as Array<[string, string]>) : []),
        ...(v.schedules.length ? ([['Schedules', v.schedules.map(scheduleText).join(`\n${INDENT}`)]] as Array<[string, string]>) : []),
      ];
      if (v.usage) rows.push(...usageRows(v.usage));
      else if (v.usageBytes !== undefined) rows.push(['Used', bytes(v.usageBytes)]);
      print(rows.map(([k, val]) => `${(k + ':').padEnd(INDENT.length)}${val}`).join('\n'));
    });

  volume
    .command('resize')
    .description('give a volume a new size limit (btrfs pools; image pools grow only); refused below what it uses now (its snapshots do not count)')
    .argument('<name>', 'volume name')
    .argument('<size>', 'the new limit: 10G, 512M, 1.5T or bytes (K, M, G, T: powers of 1024)')
    .action(async (name: string, size: string, _opts: unknown, cmd: Command) => {
      checkVolumeName(name);
      const r = await client(cmd).resizeVolume(name, size);
      if (wantsJson(cmd)) printJson(r);
      else print(`${r.name}: ${sizeRow(r.size)}`);
    });

  volume
    .command('rm')
    .alias('remove')
    .description('remove volumes: they go to the trash (kept for the retention period) unless --purge')
    .argument('<names...>', 'volume names')
    .option('--purge', 'delete the data at once instead of keeping it in the trash')
    .option('-f, --force', 'remove although stopped or created containers reference the volume, or Docker cannot be asked; drop recorded Docker mounts that no container holds any more (after a Docker crash). Never while a container runs')
    .action(async (names: string[], opts: { purge?: boolean; force?: boolean }, cmd: Command) => {
      names.forEach((n) => checkVolumeName(n));
      const api = client(cmd);
      const results = [];
      let failed = 0;
      for (const name of names) {
        const q = new URLSearchParams();
        if (opts.purge) q.set('purge', 'true');
        if (opts.force) q.set('force', 'true');
        try {
          const r = await api.call<{ removed: string; trash: TrashInfo | null; overrode?: string[] }>('DELETE', `/v1/volumes/${enc(name)}${q.size ? '?' + q : ''}`);
          results.push(r);
          if (!wantsJson(cmd)) {
            for (const o of r.overrode ?? []) process.stderr.write(`ferry: warning: --force overrode: ${o}\n`);
            print(r.trash ? `${name} (in the trash until ${r.trash.expiresAt}; \`ferry volume undelete ${name}\` brings it back)` : `${name} (purged)`);
          }
        } catch (err) {
          failed++;
          printItemError(cmd, err);
        }
      }
      if (wantsJson(cmd)) printJson(results);
      if (failed) process.exitCode = 1;
    });

  volume
    .command('undelete')
    .description('bring a removed volume back from the trash')
    .argument('<name-or-id>', 'volume name (its newest removal) or trash ID from `ferry trash ls`')
    .option('--as <new-name>', 'restore under another name (when the old name is taken again)')
    .action(async (ref: string, opts: { as?: string }, cmd: Command) => {
      if (opts.as) checkVolumeName(opts.as);
      const v = await client(cmd).call<VolumeInfo & { docker?: DockerTold }>('POST', `/v1/trash/${enc(ref)}/restore`, opts.as ? { as: opts.as } : {});
      if (wantsJson(cmd)) printJson(v);
      else {
        print(v.name);
        if (v.docker?.told) {
          const what = [...Object.entries(v.docker.labels ?? {}).map(([k, x]) => `label ${k}=${x}`), ...Object.entries(v.docker.options ?? {}).map(([k, x]) => `option ${k}=${x}`)];
          print(`Docker knows it again (driver ${v.docker.driver}${what.length ? ', ' + what.join(', ') : ''})`);
          if (v.docker.reason) print(`(${v.docker.reason})`);
        } else if (v.docker) print(`Docker was not told: ${v.docker.reason}`);
      }
    });

  const trash = program.command('trash').description('removed volumes kept for the retention period');
  trash
    .command('ls')
    .alias('list')
    .description('list removed volumes that can still be undeleted, with the space each holds')
    .option('--usage', 'measure entries not measured yet now (else the background pass does, within a minute)')
    .action(async (opts: { usage?: boolean }, cmd: Command) => {
      const { trash: items } = await client(cmd).call<{ trash: Array<TrashInfo & Partial<TrashUsage>> }>('GET', `/v1/trash${opts.usage ? '?usage=true' : ''}`);
      if (wantsJson(cmd)) return printJson(items);
      // COMPOSE: project/volume from Docker's labels, so `docker-compose down -v` finds its way back
      const compose = (t: TrashInfo) => {
        const l = t.dockerLabels ?? {};
        return l['com.docker.compose.project'] ? `${l['com.docker.compose.project']}/${l['com.docker.compose.volume'] ?? '?'}` : '-';
      };
      // (the column is shown when some entry has Compose labels)
      const withCompose = items.some((t) => compose(t) !== '-');
      print(
        table(
          ['ID', 'NAME', 'POOL', ...(withCompose ? ['COMPOSE'] : []), 'REMOVED', 'PURGED', 'SIZE'],
          items.map((t) => [t.id, t.name, t.pool, ...(withCompose ? [compose(t)] : []), ago(t.removedAt), ago(t.expiresAt), maybeBytes(t.bytes)]),
          { width: tableWidth(), shrink: ['COMPOSE', 'POOL'] },
        ),
      );
    });
  trash
    .command('purge')
    .description('delete removed volumes for good')
    .argument('[names-or-ids...]', 'entries to purge (volume name or trash ID)')
    .option('--all', 'purge every entry in the trash')
    .action(async (refs: string[], opts: { all?: boolean }, cmd: Command) => {
      // (wrong usage: exit code 2, as commander's own errors)
      if (!opts.all && refs.length === 0) cmd.error('error: name the entries to purge, or pass --all to empty the trash', { exitCode: 2, code: 'ferry.usage' });
      if (opts.all && refs.length > 0) cmd.error('error: give entries or --all, not both', { exitCode: 2, code: 'ferry.usage' });
      const api = client(cmd);
      const purged: TrashInfo[] = [];
      if (opts.all) purged.push(...(await api.call<{ purged: TrashInfo[] }>('DELETE', '/v1/trash')).purged);
      for (const ref of refs) purged.push(...(await api.purgeTrash(ref)).purged);
      if (wantsJson(cmd)) return printJson(purged);
      print(purged.length ? purged.map((t) => `purged ${t.id}`).join('\n') : 'the trash is empty');
    });

  program
    .command('status')
    .description('show the daemon, its node, its pools and counts of volumes')
    .action(async (_opts: unknown, cmd: Command) => {
      const s = await client(cmd).status();
      if (wantsJson(cmd)) return printJson(s);
      const unread = s.pools.filter((p) => p.shared && !p.ok).map((p) => p.name);
      print(
        [
          `ferryd ${s.version} on node ${s.node} (pid ${s.pid}, up ${Math.round(s.uptimeSeconds)}s)`,
          `runs as:       ${s.runsAs === 'managed-plugin' ? `managed Docker plugin (docker plugin ls; volumes bind-mounted under its propagatedMount ${s.mountRoot ?? '?'})` : `host daemon (legacy plugin socket${s.mountRoot ? `; volumes bind-mounted under ${s.mountRoot}` : ''})`}`,
          `data dir:      ${s.dataDir}`,
          `plugin socket: ${s.pluginSocket}${s.socketActivated?.includes('plugin') ? ' (held by systemd)' : ''}`,
          `api socket:    ${s.apiSocket}${s.socketActivated?.includes('api') ? ' (held by systemd)' : ''}`,
          ...(s.dockerHost ? [`docker:        ${s.dockerHost === 'none' ? 'none (no Docker engine on this host: `ferry volume rm` checks no containers here)' : s.dockerHost}`] : []),
          ...(s.apiListen ? [`api tcp:       ${s.apiListen} (bearer tokens: \`ferry token\`)`] : []),
          `volumes:       ${s.counts.volumes} (${s.counts.mounted} mounted, ${s.counts.mounts} mounts); ${s.counts.trash} in the trash (kept ${s.trashRetention})`,
          ...(s.warnings.length ? ['', `WARNINGS (${s.warnings.length}):`, ...s.warnings.map((w) => `  ${w.message}${w.file ? ` [${w.file}]` : ''}`)] : []),
          '',
          table(
            ['POOL', 'KIND', 'STATE', 'SNAPSHOTS', 'USED', 'FREE'],
            s.pools.map((p) => [p.name, `${p.kind}${p.shared ? ' shared' : ''}`, p.ok ? 'ok' : p.stalled ? 'STALLED' : 'DOWN', p.snapshotMethod ?? '-', bytes(p.capacity?.usedBytes), bytes(p.capacity?.freeBytes)]),
          ),
          '',
          // what is long goes under the table, one line each and never cut: the path tells pools apart, the
          // problem says what to do
          ...s.pools.flatMap((p) => [
            `${p.name}: ${p.path}`,
            ...(p.sizes ? [`  sizes: ${p.sizes}`] : []),
            ...(p.ok ? [] : [p.stalled ? `  STALLED since ${p.stalled.since}: ${p.problem}` : `  DOWN: ${p.problem}`]),
          ]),
          ...(s.cluster
            ? [
                '',
                `cluster (heartbeat every ${s.cluster.heartbeatMs / 1000}s, a node is dead after ${s.cluster.nodeTimeoutMs / 1000}s without one):`,
                table(
                  ['NODE', 'STATE', 'LAST HEARTBEAT', 'VERSION', 'POOLS'],
                  s.cluster.nodes.map((n) => [n.node + (n.node === s.node ? ' (this node)' : ''), n.alive ? 'alive' : 'DEAD', ago(n.lastSeen), n.version, n.pools.join(',')]),
                ),
                '',
                ...(s.cluster.attachments.length
                  ? [
                      table(
                        ['VOLUME', 'NODE', 'ACCESS', 'MOUNTS', 'CONTAINERS', 'SINCE'],
                        s.cluster.attachments.map((a) => [a.volume, a.node + (a.alive ? '' : ' [expired]'), a.access, String(a.mountIds.length), a.containers.join(',') || '-', ago(a.since)]),
                      ),
                    ]
                  : unread.length
                    ? []
                    : ['no volume of a shared pool is attached anywhere']),
                // (a pool that does not answer here: what it holds is not known, not "nothing")
                ...(unread.length ? [`attachments in pool ${unread.join(', ')} unknown: it does not answer here`] : []),
              ]
            : []),
        ].join('\n'),
      );
    });
}

