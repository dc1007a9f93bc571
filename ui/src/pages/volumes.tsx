/** The Hub's volume list: every volume of the cluster with its size, users and last backup, filtered and sorted. */
import { useMemo, useState } from 'preact/hooks';
import { volumes as listVolumes, type VolumeSummary as Volume } from '../api';
import { ErrorBox, usePoll } from '../components';
import { ago, bytes } from '../format';

type SortKey = 'name' | 'pool' | 'node' | 'access' | 'attachments' | 'size' | 'lastSnapshotAt' | 'lastBackupAt';

/** Data and snapshot bytes together: what the volume takes on the pool (unknown parts count as 0). */
const spaceOf = (v: Volume) => (v.usage?.dataBytes ?? 0) + (v.usage?.snapshotBytes ?? 0);

/** Where a volume is in use: containers of attachments across the cluster, or local mounts. */
export function usedBy(v: Volume): number {
  const fromAttachments = v.attachments.reduce((n, a) => n + (a.containers?.length || a.mountIds?.length || 1), 0);
  return Math.max(fromAttachments, v.mounts, v.containers?.length ?? 0);
}

/** Who uses it, by name: this node's containers that hold it, and the containers of other nodes' attachments. */
export function usersOf(v: Volume): { names: string[]; nodes: string[] } {
  const names = [...(v.containers ?? []).map((c) => c.name), ...v.attachments.filter((a) => a.node !== v.node || !v.containers).flatMap((a) => a.containers ?? [])];
  return { names: [...new Set(names)], nodes: [...new Set(v.attachments.map((a) => a.node))] };
}

function inUseText(v: Volume): string {
  const n = usedBy(v);
  if (n === 0) return '-';
  const { names, nodes } = usersOf(v);
  const where = nodes.length ? ` (${nodes.join(', ')})` : '';
  if (names.length === 0) return `${n} mount${n === 1 ? '' : 's'}${where || ` (${v.node})`}`;
  return `${names.slice(0, 2).join(', ')}${names.length > 2 ? ` +${names.length - 2}` : ''}${where}`;
}

const labelText = (v: Volume) =>
  Object.entries(v.labels)
    .map(([k, val]) => `${k}=${val}`)
    .join(' ');

/** The backup filter: every volume, those never backed up, those whose last backup failed (the cluster page links here). */
type BackupFilter = '' | 'never' | 'failing';
const backupFilters: Array<[BackupFilter, string]> = [['', 'Any backup state'], ['never', 'Never backed up'], ['failing', 'Backup failing']];

export function VolumesPage({ backup: initialBackup = '' }: { backup?: string }) {
  const [backup, setBackup] = useState<BackupFilter>(backupFilters.some(([k]) => k === initialBackup) ? (initialBackup as BackupFilter) : '');
  const [data, error] = usePoll(() => listVolumes(), 15000);
  const [q, setQ] = useState(sessionStorage.getItem('ferry.q') ?? '');
  const [pool, setPool] = useState('');
  const [node, setNode] = useState('');
  const [label, setLabel] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: 'name', desc: false });
  const volumes = data?.volumes;

  const choices = useMemo(() => {
    const pools = new Set<string>();
    const nodes = new Set<string>();
    const labels = new Set<string>();
    for (const v of volumes ?? []) {
      pools.add(v.pool);
      nodes.add(v.node);
      for (const a of v.attachments) nodes.add(a.node);
      for (const [k, val] of Object.entries(v.labels)) labels.add(`${k}=${val}`);
    }
    const s = (x: Set<string>) => [...x].sort();
    return { pools: s(pools), nodes: s(nodes), labels: s(labels) };
  }, [volumes]);

  const rows = useMemo(() => {
    if (!volumes) return [];
    const needle = q.trim().toLowerCase();
    const [lk, lv] = label ? [label.slice(0, label.indexOf('=')), label.slice(label.indexOf('=') + 1)] : [];
    const out = volumes.filter(
      (v) =>
        (!needle || v.name.toLowerCase().includes(needle) || labelText(v).toLowerCase().includes(needle)) &&
        (!pool || v.pool === pool) &&
        (!node || v.node === node || v.attachments.some((a) => a.node === node)) &&
        (!label || v.labels[lk!] === lv) &&
        (backup !== 'never' || !v.lastBackupAt) &&
        (backup !== 'failing' || (v.backupFailing?.length ?? 0) > 0),
    );
    const key = (v: Volume): string | number => {
      switch (sort.key) {
        case 'attachments':
          return usedBy(v);
        case 'lastBackupAt':
          return v.lastBackupAt ?? '';
        case 'lastSnapshotAt':
          return v.lastSnapshotAt ?? '';
        case 'size':
          return spaceOf(v);
        default:
          return v[sort.key];
      }
    };
    out.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return sort.desc ? -c : c;
    });
    return out;
  }, [volumes, q, pool, node, label, backup, sort]);

  const th = (key: SortKey, title: string) => (
    <th>
      <button type="button" class="sort" onClick={() => setSort((s) => ({ key, desc: s.key === key ? !s.desc : false }))} aria-sort={sort.key === key ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
        {title} {sort.key === key ? (sort.desc ? '▼' : '▲') : ''}
      </button>
    </th>
  );
  const select = (value: string, set: (v: string) => void, all: string, options: string[], name: string) => (
    <select aria-label={name} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
      <option value="">{all}</option>
      {options.map((o) => (
        <option key={o} value={o}>
          {o}
        </option>
      ))}
    </select>
  );

  return (
    <section data-testid="volumes-page">
      <h2>Volumes</h2>
      <div class="toolbar">
        <input
          type="search"
          placeholder="Search name or label…"
          aria-label="Search volumes"
          value={q}
          onInput={(e) => {
            const v = (e.target as HTMLInputElement).value;
            setQ(v);
            sessionStorage.setItem('ferry.q', v);
          }}
        />
        {select(pool, setPool, 'All pools', choices.pools, 'Pool')}
        {select(node, setNode, 'All nodes', choices.nodes, 'Node')}
        {select(label, setLabel, 'Any label', choices.labels, 'Label')}
        <select aria-label="Backups" value={backup} onChange={(e) => setBackup((e.target as HTMLSelectElement).value as BackupFilter)}>
          {backupFilters.map(([k, text]) => (
            <option key={k} value={k}>
              {text}
            </option>
          ))}
        </select>
        <span class="muted" data-testid="volume-count">
          {volumes ? `${rows.length} of ${volumes.length} volumes` : 'Loading…'}
        </span>
      </div>
      <ErrorBox error={error} />
      <table class="grid volumes">
        <thead>
          <tr>
            {th('name', 'Name')}
            {th('pool', 'Pool')}
            {th('node', 'Node')}
            {th('access', 'Access')}
            {th('attachments', 'In use')}
            {th('size', 'Size')}
            <th>Labels</th>
            {th('lastSnapshotAt', 'Last snapshot')}
            {th('lastBackupAt', 'Last backup')}
          </tr>
        </thead>
        <tbody>
          {rows.map((v) => (
            <tr key={v.name} data-testid="volume-row">
              <td title={`created ${ago(v.createdAt)}`}>
                <a href={`#/volumes/${encodeURIComponent(v.name)}`}>{v.name}</a>
              </td>
              <td data-label="Pool">
                {v.pool}
                {v.shared && <span class="tag">shared</span>}
              </td>
              <td data-label="Node">{v.node}</td>
              <td data-label="Access">
                <span class="tag">{v.access}</span>
              </td>
              <td data-label="In use" data-testid="volume-users" title={usersOf(v).names.join(', ')}>
                {inUseText(v)}
              </td>
              <td data-label="Size" data-testid="volume-space" title={v.usage?.snapshotNote ?? (v.usage?.measuredAt ? `data measured ${ago(v.usage.measuredAt)}` : 'not measured yet')}>
                {bytes(v.usage?.dataBytes)}
                {v.usage?.snapshotBytes ? <span class="muted"> + {bytes(v.usage.snapshotBytes)} snapshots</span> : null}
              </td>
              <td class="labels">
                {Object.entries(v.labels).map(([k, val]) => (
                  <span class="tag" key={k}>
                    {k}={val}
                  </span>
                ))}
              </td>
              <td data-label="Last snapshot" data-testid="volume-last-snapshot" title={v.lastSnapshotAt ?? ''}>
                {v.lastSnapshotAt ? ago(v.lastSnapshotAt) : <span class="muted">none</span>}
              </td>
              <td data-label="Last backup" title={v.lastBackupAt}>
                {v.lastBackupAt ? ago(v.lastBackupAt) : <span class="muted">never</span>}
                {v.backupFailing?.length ? (
                  <span class="tag bad" title={`the newest backup to ${v.backupFailing.join(', ')} failed`}>
                    failing
                  </span>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {volumes && rows.length === 0 && <p class="empty">No volume matches.</p>}
    </section>
  );
}
