import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { percent } from './format';

/** A horizontal bar: used / total (capacity charts, job progress). */
export function Bar({ value, total, label, warnAt = 85, testid }: { value: number; total: number; label?: string; warnAt?: number; testid?: string }) {
  const p = percent(value, total);
  return (
    <div class="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(p)} aria-label={label} data-testid={testid}>
      <div class={`bar-fill${p >= warnAt ? ' warn' : ''}`} style={{ width: `${p}%` }} />
      {label && <span class="bar-label">{label}</span>}
    </div>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      {error instanceof Error ? error.message : String(error)}
    </div>
  );
}

/** Re-run `load` every `ms` (and at once); returns [data, error, reload]. */
export function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[] = []): [T | undefined, unknown, () => void] {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const run = async () => {
      try {
        const d = await load();
        if (alive) {
          setData(d);
          setError(undefined);
        }
      } catch (err) {
        if (alive) setError(err);
      }
      if (alive && ms > 0) timer = window.setTimeout(run, ms);
    };
    void run();
    return () => {
      alive = false;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [...deps, tick]);
  return [data, error, () => setTick((t) => t + 1)];
}

/** A modal asking to confirm an action; `danger` says what is lost. */
export function Confirm({ title, children, danger, confirmLabel, onConfirm, onCancel }: { title: string; children?: ComponentChildren; danger?: boolean; confirmLabel: string; onConfirm: () => void; onCancel: () => void }) {
  useEffect(() => {
    const esc = (e: KeyboardEvent) => e.key === 'Escape' && onCancel();
    window.addEventListener('keydown', esc);
    return () => window.removeEventListener('keydown', esc);
  }, [onCancel]);
  return (
    <div class="modal-bg" onClick={onCancel}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={title} onClick={(e) => e.stopPropagation()}>
        <h3>{title}</h3>
        <div class="modal-body">{children}</div>
        <div class="modal-actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="button" class={danger ? 'danger' : 'primary'} onClick={onConfirm} autofocus>
            {confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** What an action did (role status), or why it failed (role alert). */
export function ActionResult({ notice, error }: { notice?: string | undefined; error?: string | undefined }) {
  return (
    <>
      {notice && (
        <div class="notice" role="status">
          {notice}
        </div>
      )}
      {error && (
        <div class="error" role="alert">
          {error}
        </div>
      )}
    </>
  );
}

/**
 * An action started from a page: one at a time (busy), what it did (notice) or why it failed (error, in the
 * page's words by `describe`); `settled` runs after either (close a dialog, reload a list).
 */
export function useAction(describe: (err: unknown) => string, settled?: () => void) {
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string>();
  const [error, setError] = useState<string>();
  const act = async (what: () => Promise<string>) => {
    setBusy(true);
    setError(undefined);
    setNotice(undefined);
    try {
      setNotice(await what());
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
      settled?.();
    }
  };
  return { busy, notice, error, act };
}
