/** The Hub's trash page: removed volumes, who removed them, when they will be purged; undelete and purge. */
import { useState } from 'preact/hooks';
import { client, type TrashEntry } from '../api';
import { ActionResult, Confirm, Empty, ErrorBox, useAction, usePoll } from '../components';
import { ago, bytes, date, inTime } from '../format';
import type { Session } from '../main';

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function TrashPage({ session }: { session: Session }) {
  const [data, error, reload] = usePoll(() => client.trash({ usage: true }), 5000);
  const [dialog, setDialog] = useState<{ kind: 'undelete' | 'purge'; entry: TrashEntry }>();
  const [as, setAs] = useState('');
  const entries = data?.trash ?? [];

  const { busy, notice, error: actionError, act } = useAction(errorText, () => {
    setDialog(undefined);
    reload();
  });
  const undelete = (t: TrashEntry, name: string) =>
    act(async () => {
      const v = await client.undelete(t.id, name && name !== t.name ? { as: name } : {});
      return `${v.name} is back, with its data and snapshots.`;
    });
  const purge = (t: TrashEntry) =>
    act(async () => {
      await client.purgeTrash(t.id);
      return `${t.name} (removed ${date(t.removedAt)}) is deleted for good.`;
    });

  return (
    <section data-testid="trash-page">
      <h2>Trash</h2>
      <p class="muted">
        Removed volumes, kept for {session.status.trashRetention} after removal and then purged. Undelete brings a volume back with its data and snapshots; its containers
        find it under its name again. Each node keeps the entries it removed: this page shows {session.status.node}'s.
      </p>
      <ErrorBox error={error} />
      <ActionResult notice={notice} error={actionError} />
      {data && entries.length === 0 && <Empty>The trash is empty.</Empty>}
      {entries.length > 0 && (
        <table class="grid trash">
          <thead>
            <tr>
              <th>Name</th>
              <th>Pool</th>
              <th>Size</th>
              <th>Removed</th>
              <th>By</th>
              <th>Purged</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {entries.map((t) => (
              <tr key={t.id} data-testid="trash-row" data-id={t.id}>
                <td title={t.id}>
                  {t.name}
                  {t.dockerLabels?.['com.docker.compose.project'] && <span class="tag">compose {t.dockerLabels['com.docker.compose.project']}</span>}
                </td>
                <td>{t.pool}</td>
                <td>{bytes(t.bytes)}</td>
                <td title={date(t.removedAt)}>{ago(t.removedAt)}</td>
                <td>{t.removedBy}</td>
                <td title={date(t.expiresAt)}>{inTime(t.expiresAt)}</td>
                <td class="row-actions">
                  {session.canWrite ? (
                    <>
                      <button
                        type="button"
                        disabled={busy}
                        onClick={() => {
                          setAs(t.name);
                          setDialog({ kind: 'undelete', entry: t });
                        }}
                      >
                        Undelete
                      </button>
                      <button type="button" class="danger" disabled={busy} onClick={() => setDialog({ kind: 'purge', entry: t })}>
                        Purge
                      </button>
                    </>
                  ) : (
                    <span class="muted small">admin token needed</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {dialog?.kind === 'undelete' && (
        <Confirm title={`Undelete ${dialog.entry.name}`} confirmLabel="Undelete" onCancel={() => setDialog(undefined)} onConfirm={() => undelete(dialog.entry, as.trim())}>
          <p>
            Bring back the volume removed {ago(dialog.entry.removedAt)} from pool {dialog.entry.pool}, with its data and snapshots. If a volume of that name exists
            now, give it another name.
          </p>
          <label for="undelete-as">Name</label>
          <input id="undelete-as" value={as} spellcheck={false} onInput={(e) => setAs((e.target as HTMLInputElement).value)} />
        </Confirm>
      )}
      {dialog?.kind === 'purge' && (
        <Confirm title={`Purge ${dialog.entry.name}?`} danger confirmLabel="Delete for good" onCancel={() => setDialog(undefined)} onConfirm={() => purge(dialog.entry)}>
          <p>
            This deletes the data of {dialog.entry.name} ({bytes(dialog.entry.bytes)}, removed {date(dialog.entry.removedAt)}) and all its snapshots now, instead of{' '}
            {inTime(dialog.entry.expiresAt)}. It cannot be undone; backups of it are kept.
          </p>
        </Confirm>
      )}
    </section>
  );
}
