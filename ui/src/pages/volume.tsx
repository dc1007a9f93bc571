/** The Hub's page of one volume: its facts, snapshots, history, backups and jobs, and the actions on them (snapshot, restore, clone, back up, check out, reset). */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, client, type Backup, type Job, type Snapshot } from '../api';
import { ActionResult, Bar, Confirm, Empty, ErrorBox, useAction, usePoll } from '../components';
import { HistoryGraph, commitsAfter } from './history-graph';
import { ago, bytes, date, duration, inTime } from '../format';
import { snapshotHolders } from '../../../src/wire/usage-text';
import type { Session } from '../main';
import { JobRow } from './jobs';

/** In a dialog of an action refused while containers use the volume: stop them meanwhile and start them again. */
function RestartOption({ count, checked, onChange, during, refused = 'it' }: { count: number; checked: boolean; onChange: (v: boolean) => void; during: string; refused?: string }) {
  if (count === 0) return null;
  return (
    <label>
      <input type="checkbox" checked={checked} onChange={(e) => onChange((e.target as HTMLInputElement).checked)} /> Stop the {count} container(s) using it during the {during} and start them again (otherwise {refused} is
      refused while they run)
    </label>
  );
}

type Dialog =
  | { kind: 'restore'; snap: Snapshot }
  | { kind: 'clone'; snap: Snapshot }
  | { kind: 'delete-snapshot'; snap: Snapshot }
  | { kind: 'restore-backup'; backup: Backup; target: string }
  | { kind: 'delete-backup'; backup: Backup; target: string }
  | { kind: 'checkout'; branch: string }
  | { kind: 'reset'; commit: Snapshot }
  | undefined;

const message = (err: unknown) => (err instanceof ApiError ? (err.status === 403 ? `Not allowed: ${err.message}` : err.message) : err instanceof Error ? err.message : String(err));

export function VolumePage({ name, session }: { name: string; session: Session }) {
  const [vol, volError, reloadVol] = usePoll(() => client.volume(name), 0, [name]);
  const [snaps, snapError, reloadSnaps] = usePoll(() => client.snapshots(name, { all: true }), 0, [name]);
  const [branches, , reloadBranches] = usePoll(() => client.branches(name).catch(() => undefined), 0, [name]);
  const targets = session.status.backupTargets ?? [];
  const [backups, , reloadBackups] = usePoll(
    () =>
      Promise.all(
        targets.map((t) =>
          client.backups(t, name).then(
            (r) => ({ target: t, backups: r.backups, error: undefined as string | undefined }),
            (err: unknown) => ({ target: t, backups: [] as Backup[], error: message(err) }),
          ),
        ),
      ),
    0,
    [name],
  );
  const [jobs, , reloadJobs] = usePoll(() => client.jobs(), 1000, [name]);
  // when a job of this volume ends, what it made shows up: a backup's snapshot and the backup itself
  const runningIds = useRef(new Set<string>());
  useEffect(() => {
    const now = new Set((jobs?.jobs ?? []).filter((j) => j.volume === name && j.state === 'running').map((j) => j.id));
    const ended = [...runningIds.current].some((id) => !now.has(id));
    runningIds.current = now;
    if (ended) {
      reloadSnaps();
      reloadBackups();
      reloadVol();
    }
  }, [jobs]);
  const [dialog, setDialog] = useState<Dialog>();
  const [target, setTarget] = useState(targets[0] ?? '');
  const [cloneName, setCloneName] = useState('');
  const [restartContainers, setRestartContainers] = useState(false);

  const { busy, notice, error: actionError, act } = useAction(message, () => setDialog(undefined));
  /** A job just started: watched from now on, so that what it makes shows up even if it ends before the next poll. */
  const started = (j: Job) => {
    runningIds.current.add(j.id);
    reloadJobs();
  };
  const snapshotNow = () =>
    act(async () => {
      const j = await client.startSnapshot(name);
      started(j);
      return `Snapshot of ${name} started (job ${j.id}); its progress is below.`;
    });
  const backupNow = () =>
    act(async () => {
      const j = await client.startBackup(name, { target });
      started(j);
      return `Backup to ${target} started (job ${j.id}); follow it below or in Jobs.`;
    });
  const restart = restartContainers ? { restartContainers: true } : {};
  const restore = (s: Snapshot) =>
    act(async () => {
      await client.restoreSnapshot(name, s.id, restart);
      reloadVol();
      reloadSnaps();
      return `${name} restored to snapshot ${s.name}.`;
    });
  const clone = (s: Snapshot, as: string) =>
    act(async () => {
      await client.createVolume(as, { from: `${name}@${s.id}` });
      return `Volume ${as} created from ${name}@${s.name}.`;
    });
  const deleteSnapshot = (s: Snapshot) =>
    act(async () => {
      await client.deleteSnapshot(name, s.id);
      reloadSnaps();
      reloadVol();
      return `Snapshot ${s.name} of ${name} deleted.`;
    });
  const restoreBackup = (b: Backup, as: string) =>
    act(async () => {
      const j = await client.restoreBackup(b.url, as);
      reloadJobs(); // a job of the new volume, not of this one
      return `Restoring the backup of ${ago(b.time)} into a new volume ${as} (job ${j.id}); follow it below or in Jobs.`;
    });
  const deleteBackup = (b: Backup, t: string) =>
    act(async () => {
      await client.deleteBackup(b.url);
      reloadBackups();
      return `Backup ${b.id.slice(0, 8)} of ${name} removed from ${t} (its data goes at the next prune).`;
    });
  const checkout = (branch: string) =>
    act(async () => {
      const r = await client.checkout(name, branch, restart);
      reloadVol();
      reloadSnaps();
      reloadBranches();
      return `${name} is on branch ${r.branch}${r.commit ? ` (${r.commit.slice(0, 8)})` : ''}.`;
    });
  const reset = (c: Snapshot) =>
    act(async () => {
      const r = await client.reset(name, c.id, restart);
      reloadVol();
      reloadSnaps();
      reloadBranches();
      return `${name}: ${branches?.current ?? 'the branch'} is now at ${r.commit.id.slice(0, 8)} ${r.commit.message ?? ''}`.trimEnd() + '.';
    });
  const [copied, setCopied] = useState<string>();
  const copyUrl = async (b: Backup) => {
    try {
      await navigator.clipboard.writeText(b.url);
      setCopied(b.url);
    } catch {
      // no clipboard (plain http on another host): the URL is shown selected, to copy by hand
      setCopied(`select:${b.url}`);
    }
  };

  if (volError) {
    return (
      <section>
        <p>
          <a href="#/volumes">← Volumes</a>
        </p>
        <ErrorBox error={volError} />
      </section>
    );
  }
  const all = snaps?.snapshots ?? [];
  const timeline = all.filter((s) => s.kind !== 'commit' && s.kind !== 'worktree').sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const commits = all.filter((s) => s.kind === 'commit');
  const myJobs = (jobs?.jobs ?? []).filter((j) => j.volume === name).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  const running = myJobs.filter((j) => j.state === 'running');
  const containers = vol?.containers ?? [];

  return (
    <section data-testid="volume-page">
      <p>
        <a href="#/volumes">← Volumes</a>
      </p>
      <h2>
        {name} {vol && <span class="tag">{vol.access}</span>} {vol?.shared && <span class="tag">shared</span>}
      </h2>
      {vol && (
        <dl class="facts">
          <dt>Pool</dt>
          <dd>{vol.pool}</dd>
          <dt>Node</dt>
          <dd>{vol.node}</dd>
          <dt>Data</dt>
          <dd data-testid="volume-size" title={vol.usage?.measuredAt ?? ''}>
            {vol.usage?.dataBytes != null ? `${bytes(vol.usage.dataBytes)} (measured ${ago(vol.usage.measuredAt)})` : 'not measured yet'}
          </dd>
          {vol.size ? (
            <>
              <dt>Size</dt>
              <dd data-testid="volume-limit" title={vol.size.problem ?? ''}>
                {vol.size.usedBytes !== null ? <Bar value={vol.size.usedBytes} total={vol.size.limitBytes} label={`${bytes(vol.size.usedBytes)} of ${bytes(vol.size.limitBytes)} used`} /> : `${bytes(vol.size.limitBytes)} (use shown while it is mounted)`}
                {vol.size.problem && <div class="muted small">{vol.size.problem}</div>}
              </dd>
            </>
          ) : null}
          <dt>Snapshots</dt>
          <dd data-testid="volume-snapshot-size" title={vol.usage?.snapshotNote ?? 'held only by the snapshots: freed if they all went'}>
            {vol.usage?.snapshotBytes != null ? `${bytes(vol.usage.snapshotBytes)} in ${snapshotHolders(vol.usage)}` : vol.usage?.snapshotNote ?? '-'}
          </dd>
          {vol.usage?.trashBytes ? (
            <>
              <dt>Trash</dt>
              <dd data-testid="volume-trash-size">{bytes(vol.usage.trashBytes)} (removed volumes of this name)</dd>
            </>
          ) : null}
          {vol.schedules.length > 0 && (
            <>
              <dt>Schedules</dt>
              <dd data-testid="volume-schedules">
                {vol.schedules.map((s) => (
                  <div key={s.kind} title={`${s.schedule} (UTC)${s.source === 'volume option' ? '' : `, from ${s.source}`}`}>
                    {s.kind === 'backup' ? `Backups to ${s.target ?? '?'}` : 'Snapshots'} <code>{s.schedule}</code>
                    {s.keep ? `, keep ${s.keep}` : ''} — {s.due ? 'a missed run is due now' : `next ${date(s.nextRun)}${inTime(s.nextRun).startsWith('in ') ? ` (${inTime(s.nextRun)})` : ''}`}
                    {s.lastRun ? <span class="muted">, last {ago(s.lastRun)}</span> : null}
                  </div>
                ))}
              </dd>
            </>
          )}
          <dt>Created</dt>
          <dd title={vol.createdAt}>{date(vol.createdAt)}</dd>
          <dt>Labels</dt>
          <dd>{Object.keys(vol.labels).length ? Object.entries(vol.labels).map(([k, v]) => <span class="tag" key={k}>{`${k}=${v}`}</span>) : '-'}</dd>
          <dt>Mountpoint</dt>
          <dd>
            <code>{vol.mountpoint}</code>
          </dd>
        </dl>
      )}

      <div class="actions">
        <button type="button" class="primary" disabled={!session.canWrite || busy} onClick={snapshotNow} title={session.canWrite ? '' : 'needs an admin token'}>
          Snapshot now
        </button>
        {targets.length > 0 && (
          <>
            <select aria-label="Backup target" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
              {targets.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
            <button type="button" disabled={!session.canWrite || busy || !target} onClick={backupNow}>
              Back up now
            </button>
          </>
        )}
        {!session.canWrite && <span class="muted">Read-only token: actions need an admin token.</span>}
      </div>
      <ActionResult notice={notice} error={actionError} />
      {running.length > 0 && (
        <div class="running">
          {running.map((j) => (
            <JobRow key={j.id} job={j} />
          ))}
        </div>
      )}

      <div class="columns">
        <div>
          <h3>Snapshots</h3>
          <ErrorBox error={snapError} />
          {snaps && timeline.length === 0 && <Empty>No snapshots yet.</Empty>}
          <ol class="timeline" data-testid="snapshot-timeline">
            {timeline.map((s) => (
              <li key={s.id} data-testid="snapshot-item">
                <div class="when" title={date(s.createdAt)}>
                  {ago(s.createdAt)}
                </div>
                <div>
                  <b>{s.name}</b> <span class="tag">{s.origin}</span>
                  <span class="muted small">
                    {' '}
                    {s.method}, {s.consistency}, {duration(s.durationMs)}
                    {s.stats.files !== undefined ? `, ${s.stats.files} files` : ''}
                  </span>
                  {session.canWrite && (
                    <span class="row-actions">
                      <button type="button" class="link" onClick={() => setDialog({ kind: 'clone', snap: s })}>
                        Clone
                      </button>
                      <button type="button" class="link danger" onClick={() => setDialog({ kind: 'restore', snap: s })}>
                        Restore
                      </button>
                      <button type="button" class="link danger" onClick={() => setDialog({ kind: 'delete-snapshot', snap: s })}>
                        Delete
                      </button>
                    </span>
                  )}
                </div>
              </li>
            ))}
          </ol>
        </div>
        <div>
          <h3>In use by</h3>
          {vol && containers.length === 0 && vol.attachments.length === 0 && vol.mounts === 0 && <Empty>Not mounted anywhere.</Empty>}
          <ul class="plain" data-testid="attachments">
            {containers.map((c) => (
              <li key={c.id} data-testid="container">
                container <strong>{c.name}</strong> <span class={`tag${c.state === 'running' ? ' current' : ''}`}>{c.state}</span> <code class="muted">{c.id.slice(0, 12)}</code> on {vol?.node}
              </li>
            ))}
            {vol?.attachments.map((a) => (
              <li key={a.node}>
                <span class={`dot ${a.alive === false ? 'down' : 'up'}`} /> {a.node}: {(a.containers ?? []).map((c) => c.slice(0, 12)).join(', ') || `${a.mountIds?.length ?? 0} mount(s)`} ({a.access}, since {ago(a.since)})
              </li>
            ))}
            {vol && vol.mounts > 0 && containers.length === 0 && vol.attachments.length === 0 && <li>{vol.mounts} mount(s) on {vol.node}</li>}
          </ul>

          <h3>History</h3>
          <HistoryGraph commits={commits} branches={branches} {...(session.canWrite ? { onCheckout: (branch: string) => setDialog({ kind: 'checkout', branch }), onReset: (commit: Snapshot) => setDialog({ kind: 'reset', commit }) } : {})} />

          <h3>Backups</h3>
          {targets.length === 0 && <Empty>No backup target is configured (backupTargets in ferry.yaml).</Empty>}
          {targets.length > 0 && !backups && <p class="muted">Reading the backup targets…</p>}
          {backups?.map((t) => (
            <div key={t.target} data-testid="backups">
              <h4>{t.target}</h4>
              {t.error && (
                <p class="error small" data-testid="target-error">
                  target {t.target}: {t.error}
                </p>
              )}
              {!t.error && t.backups.length === 0 && <Empty>No backup of {name} in {t.target}.</Empty>}
              <ul class="plain">
                {[...t.backups]
                  .sort((a, b) => b.time.localeCompare(a.time))
                  .map((b) => (
                    <li key={b.id} title={b.url} data-testid="backup-item">
                      {ago(b.time)} · {bytes(b.bytes)}, {b.files} files, {bytes(b.bytesAdded)} added · {duration(b.durationMs)}
                      <span class="row-actions">
                        {session.canWrite && (
                          <button type="button" class="link" onClick={() => setDialog({ kind: 'restore-backup', backup: b, target: t.target })}>
                            Restore as new volume
                          </button>
                        )}
                        <button type="button" class="link" onClick={() => void copyUrl(b)}>
                          {copied === b.url ? 'Copied' : 'Copy URL'}
                        </button>
                        {session.canWrite && (
                          <button type="button" class="link danger" onClick={() => setDialog({ kind: 'delete-backup', backup: b, target: t.target })}>
                            Delete
                          </button>
                        )}
                      </span>
                      {copied === `select:${b.url}` && <input class="url" readOnly value={b.url} ref={(el) => el?.select()} aria-label="Backup URL" />}
                    </li>
                  ))}
              </ul>
            </div>
          ))}
          {targets.length > 0 && (
            <button type="button" class="link" onClick={reloadBackups}>
              Refresh backups
            </button>
          )}

          <h3>Recent jobs</h3>
          {myJobs.length === 0 ? <Empty>No job for this volume since ferryd started.</Empty> : myJobs.slice(0, 5).map((j) => <JobRow key={j.id} job={j} />)}
        </div>
      </div>

      {dialog?.kind === 'restore' && (
        <Confirm title={`Restore ${name}?`} danger confirmLabel={`Restore to ${dialog.snap.name}`} onCancel={() => setDialog(undefined)} onConfirm={() => restore(dialog.snap)}>
          <p>
            The data of <b>{name}</b> is replaced by snapshot <b>{dialog.snap.name}</b> of {date(dialog.snap.createdAt)}.
          </p>
          <p class="warn-text">Every change made to {name} since then ({ago(dialog.snap.createdAt)}) is lost, unless a newer snapshot holds it.</p>
          <RestartOption count={containers.length} checked={restartContainers} onChange={setRestartContainers} during="restore" refused="the restore" />
        </Confirm>
      )}
      {dialog?.kind === 'delete-snapshot' && (
        <Confirm title={`Delete snapshot ${dialog.snap.name}?`} danger confirmLabel="Delete snapshot" onCancel={() => setDialog(undefined)} onConfirm={() => deleteSnapshot(dialog.snap)}>
          <p>
            Snapshot <b>{dialog.snap.name}</b> of {date(dialog.snap.createdAt)} is deleted for good: the state of {name} at that time can no longer be restored or cloned from this host
            {timeline.some((s) => s.createdAt < dialog.snap.createdAt) ? ' (older snapshots stay)' : ''}. The live data of {name} does not change.
          </p>
        </Confirm>
      )}
      {dialog?.kind === 'restore-backup' && (
        <Confirm title={`Restore a backup of ${name}`} confirmLabel="Restore into new volume" onCancel={() => setDialog(undefined)} onConfirm={() => restoreBackup(dialog.backup, cloneName.trim() || `${name}-restored`)}>
          <p>
            A new volume with the data of the backup of {date(dialog.backup.time)} in {dialog.target} ({bytes(dialog.backup.bytes)}, {dialog.backup.files} files). {name} itself does not change; nothing is lost.
          </p>
          <label for="restore-name">New volume name</label>
          <input id="restore-name" value={cloneName} onInput={(e) => setCloneName((e.target as HTMLInputElement).value)} placeholder={`${name}-restored`} />
        </Confirm>
      )}
      {dialog?.kind === 'delete-backup' && (
        <Confirm title={`Delete this backup of ${name}?`} danger confirmLabel="Delete backup" onCancel={() => setDialog(undefined)} onConfirm={() => deleteBackup(dialog.backup, dialog.target)}>
          <p>
            The backup of {date(dialog.backup.time)} in <b>{dialog.target}</b> is forgotten, and the data only it holds is deleted by the next prune of {dialog.target}. {name} and its other backups do not change.
          </p>
          <p class="muted small">
            <code>{dialog.backup.url}</code>
          </p>
        </Confirm>
      )}
      {dialog?.kind === 'checkout' && (
        <Confirm title={`Check out branch ${dialog.branch}?`} confirmLabel={`Switch to ${dialog.branch}`} onCancel={() => setDialog(undefined)} onConfirm={() => checkout(dialog.branch)}>
          <p>
            The data of <b>{name}</b> becomes that of branch <b>{dialog.branch}</b>. Changes not committed on {branches?.current ?? 'the current branch'} are kept aside and come back when you check it out again: nothing is lost.
          </p>
          <RestartOption count={containers.length} checked={restartContainers} onChange={setRestartContainers} during="switch" />
        </Confirm>
      )}
      {dialog?.kind === 'reset' &&
        (() => {
          const lost = commitsAfter(commits, branches, dialog.commit);
          return (
            <Confirm title={`Reset ${branches?.current ?? 'the branch'} to ${dialog.commit.id.slice(0, 8)}?`} danger confirmLabel={`Reset to ${dialog.commit.id.slice(0, 8)}`} onCancel={() => setDialog(undefined)} onConfirm={() => reset(dialog.commit)}>
              <p>
                The data of <b>{name}</b> becomes that of commit <b>{dialog.commit.message ?? dialog.commit.name}</b> ({date(dialog.commit.createdAt)}), and branch {branches?.current} points at it.
              </p>
              <p class="warn-text" data-testid="reset-lost">
                Lost: every change not committed since the last commit
                {lost.length > 0 ? `, and ${lost.length} commit(s) of ${branches?.current} after it, unless another branch holds them: ${lost.map((c) => c.message ?? c.id.slice(0, 8)).join('; ')}` : ''}.
              </p>
              <RestartOption count={containers.length} checked={restartContainers} onChange={setRestartContainers} during="reset" />
            </Confirm>
          );
        })()}
      {dialog?.kind === 'clone' && (
        <Confirm title={`Clone ${name}@${dialog.snap.name}`} confirmLabel="Create volume" onCancel={() => setDialog(undefined)} onConfirm={() => clone(dialog.snap, cloneName.trim() || `${name}-copy`)}>
          <p>A new volume with the data of snapshot {dialog.snap.name}. Nothing is lost.</p>
          <label for="clone-name">New volume name</label>
          <input id="clone-name" value={cloneName} onInput={(e) => setCloneName((e.target as HTMLInputElement).value)} placeholder={`${name}-copy`} />
        </Confirm>
      )}
    </section>
  );
}
