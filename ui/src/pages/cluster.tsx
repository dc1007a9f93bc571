/** The Hub's cluster page: nodes, pools and their capacity, and the warnings an operator should act on. */
import { client, volumes as listVolumes, type VolumeSummary as Volume, type Status } from '../api';
import { Bar, CapacityChart, ErrorBox, usePoll } from '../components';
import { ago, agoSeconds, bytes, date } from '../format';
import type { Session } from '../main';

/** One thing that needs a person's attention; `href` opens the volumes it is about. */
export interface Warning {
  text: string;
  href?: string;
}

/** What needs a person's attention, from the status and the volumes list (no extra calls). */
export function warnings(status: Status, volumes: Volume[] | undefined): Warning[] {
  const out: Warning[] = [];
  const say = (text: string, href?: string) => out.push(href ? { text, href } : { text });
  for (const p of status.pools) {
    if (!p.ok) say(`pool ${p.name} is not usable${p.problem ? `: ${p.problem}` : ''}`);
    else if (p.capacity) {
      // as df counts: used / (used + available)
      const usable = p.capacity.usedBytes + p.capacity.freeBytes;
      if (usable > 0 && p.capacity.freeBytes / usable < 0.1) say(`pool ${p.name} is ${Math.round((p.capacity.usedBytes / usable) * 100)}% full (${bytes(p.capacity.freeBytes)} free)`);
    }
  }
  for (const t of status.targetProblems ?? []) say(`backup target ${t.target} fails: ${t.message} (${agoSeconds(t.at)})`);
  const nodes = status.cluster?.nodes ?? [];
  for (const n of nodes) if (!n.alive) say(`node ${n.node} has not sent a heartbeat (last one ${agoSeconds(n.lastSeen)})`);
  for (const p of status.pools.filter((x) => x.shared)) {
    for (const n of nodes.filter((x) => x.alive)) {
      const names = n.pools;
      if (!names.includes(p.name)) say(`pool ${p.name} not mounted on node ${n.node}`);
    }
  }
  if (volumes) {
    const never = volumes.filter((v) => !v.lastBackupAt).length;
    if (never > 0) say(`${never} volume${never === 1 ? '' : 's'} never backed up${status.backupTargets?.length ? '' : ' (no backup target configured)'}`, '#/volumes?backup=never');
    const failing = volumes.filter((v) => v.backupFailing?.length).length;
    if (failing > 0) say(`${failing} volume${failing === 1 ? '' : 's'} whose last backup failed`, '#/volumes?backup=failing');
    const stale = volumes.filter((v) => v.lastBackupAt && Date.now() - Date.parse(v.lastBackupAt) > 7 * 86400_000).length;
    if (stale > 0) say(`${stale} volume${stale === 1 ? '' : 's'} not backed up for more than a week`);
  }
  return out;
}

export function ClusterPage({ session }: { session: Session }) {
  const [data, error] = usePoll(async () => {
    const [status, vols] = await Promise.all([client.status(), listVolumes()]);
    return { status, volumes: vols.volumes };
  }, 5000);
  const [history] = usePoll(() => client.capacity().catch(() => undefined), 60_000);
  const status = data?.status ?? session.status;
  const volumes = data?.volumes;
  const warns = warnings(status, volumes);
  const byPool = new Map<string, number>();
  for (const v of volumes ?? []) byPool.set(v.pool, (byPool.get(v.pool) ?? 0) + 1);
  const nodes = status.cluster?.nodes ?? [];
  return (
    <section data-testid="cluster-page">
      <h2>Cluster</h2>
      <ErrorBox error={error} />
      <div class="counts">
        <div class="count">
          <b>{status.counts.volumes}</b>
          <span>volumes</span>
        </div>
        <div class="count">
          <b>{status.counts.mounted}</b>
          <span>mounted here</span>
        </div>
        <div class="count">
          <b>{status.counts.mounts}</b>
          <span>mounts</span>
        </div>
        <div class="count">
          <b>{status.counts.trash}</b>
          <span>in trash</span>
        </div>
        <div class="count">
          <b>{nodes.length || 1}</b>
          <span>node{nodes.length === 1 ? '' : 's'}</span>
        </div>
      </div>

      <h3>Warnings</h3>
      {warns.length === 0 ? (
        <p class="ok-line">Nothing needs attention.</p>
      ) : (
        <ul class="warnings" data-testid="warnings">
          {warns.map((w) => (
            <li key={w.text}>⚠ {w.href ? <a href={w.href}>{w.text}</a> : w.text}</li>
          ))}
        </ul>
      )}

      <h3>Pools</h3>
      <table class="grid">
        <thead>
          <tr>
            <th>Pool</th>
            <th>Kind</th>
            <th>Snapshots</th>
            <th>Sizes</th>
            <th>Volumes</th>
            <th class="wide">Capacity</th>
          </tr>
        </thead>
        <tbody>
          {status.pools.map((p) => (
            <tr key={p.name} data-testid="pool-row">
              <td>
                <b>{p.name}</b>
                {p.shared && <span class="tag">shared</span>}
                {!p.ok && <span class="tag bad">down</span>}
                <div class="muted small">{p.path}</div>
              </td>
              <td>{p.kind}</td>
              <td>{p.snapshotMethod ?? '-'}</td>
              <td>{p.sizes ?? '-'}</td>
              <td>{byPool.get(p.name) ?? 0}</td>
              <td>
                {p.capacity ? (
                  <Bar value={p.capacity.usedBytes} total={p.capacity.usedBytes + p.capacity.freeBytes} label={`${bytes(p.capacity.usedBytes)} used · ${bytes(p.capacity.freeBytes)} free · ${bytes(p.capacity.totalBytes)} in all`} />
                ) : (
                  <span class="muted">{p.problem ?? 'unknown'}</span>
                )}
                {history && <CapacityChart samples={history.pools[p.name] ?? []} intervalMs={history.intervalMs} testid="capacity-chart" />}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      <h3>Nodes</h3>
      <table class="grid">
        <thead>
          <tr>
            <th>Node</th>
            <th>State</th>
            <th>Last heartbeat</th>
            <th>Version</th>
            <th>Shared pools</th>
            <th class="wide">Own pools</th>
          </tr>
        </thead>
        <tbody>
          {nodes.length === 0 ? (
            <tr data-testid="node-row">
              <td>
                <b>{status.node}</b> <span class="tag">this node</span>
              </td>
              <td>
                <span class="dot up" /> up {ago(status.startedAt).replace(' ago', '')}
              </td>
              <td class="muted">no shared pool: no cluster heartbeats</td>
              <td>{status.version}</td>
              <td>-</td>
              <td class="muted">(above)</td>
            </tr>
          ) : (
            nodes.map((n) => (
              <tr key={n.node} data-testid="node-row">
                <td>
                  <b>{n.node}</b> {n.node === status.node && <span class="tag">this node</span>}
                </td>
                <td>
                  <span class={`dot ${n.alive ? 'up' : 'down'}`} /> {n.alive ? 'alive' : 'no heartbeat'}
                </td>
                <td title={date(n.lastSeen)}>{agoSeconds(n.lastSeen)}</td>
                <td>{n.version ?? '-'}</td>
                <td>{n.pools.join(', ') || '-'}</td>
                <td data-testid="node-capacity">
                  {Object.entries(n.capacity ?? {}).map(([pool, c]) => (
                    <Bar key={pool} value={c.usedBytes} total={c.usedBytes + c.freeBytes} label={`${pool}: ${bytes(c.usedBytes)} used · ${bytes(c.freeBytes)} free`} />
                  ))}
                  {!n.capacity && <span class="muted">-</span>}
                </td>
              </tr>
            ))
          )}
        </tbody>
      </table>
      <p class="muted small">
        ferryd {status.version} on {status.node}, started {ago(status.startedAt)}
        {status.apiListen ? ` · API on ${status.apiListen}` : ''}
      </p>
    </section>
  );
}
