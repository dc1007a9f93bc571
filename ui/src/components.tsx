/** The Hub's building blocks shared by its pages: bars, the capacity chart, error and empty boxes, confirm dialogs, polling and action hooks. */
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

/**
 * A pool's used share over time, as an area chart (0-100 % of used + free, like df), with what it went from
 * and to. Samples further apart than two intervals are a gap (the pool was down, or ferryd was), not a line.
 */
export function CapacityChart({ samples, intervalMs, testid }: { samples: Array<{ at: string; usedBytes: number; freeBytes: number }>; intervalMs: number; testid?: string }) {
  if (samples.length < 2) return <div class="muted small">{samples.length === 0 ? 'no samples yet' : 'one sample so far: the chart starts with the next'}</div>;
  const W = 300;
  const H = 44;
  const t0 = Date.parse(samples[0]!.at);
  const t1 = Date.parse(samples.at(-1)!.at);
  const span = Math.max(1, t1 - t0);
  const pct = (s: { usedBytes: number; freeBytes: number }) => (s.usedBytes + s.freeBytes > 0 ? (s.usedBytes / (s.usedBytes + s.freeBytes)) * 100 : 0);
  const x = (s: { at: string }) => ((Date.parse(s.at) - t0) / span) * W;
  const y = (p: number) => H - (p / 100) * H;
  // split into runs without gaps
  const runs: (typeof samples)[] = [];
  for (const s of samples) {
    const last = runs.at(-1)?.at(-1);
    if (!last || Date.parse(s.at) - Date.parse(last.at) > 2 * intervalMs) runs.push([s]);
    else runs.at(-1)!.push(s);
  }
  const first = pct(samples[0]!);
  const now = pct(samples.at(-1)!);
  const hours = span / 3_600_000;
  const over = hours >= 1 ? `${hours.toFixed(hours < 10 ? 1 : 0)} h` : span >= 60_000 ? `${Math.round(span / 60_000)} min` : `${Math.max(1, Math.round(span / 1000))} s`;
  const text = `used ${first.toFixed(1)} % → ${now.toFixed(1)} % over ${over} (${samples.length} samples)`;
  return (
    <figure class="chart" data-testid={testid} aria-label={text}>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={text}>
        <line x1="0" x2={W} y1={y(90)} y2={y(90)} class="chart-limit" />
        {runs.map((r, i) =>
          r.length === 1 ? (
            <circle key={i} cx={x(r[0]!)} cy={y(pct(r[0]!))} r="1.5" class="chart-line" />
          ) : (
            <path key={i} d={`M${x(r[0]!)},${H} ${r.map((s) => `L${x(s).toFixed(1)},${y(pct(s)).toFixed(1)}`).join(' ')} L${x(r.at(-1)!)},${H} Z`} class="chart-area" />
          ),
        )}
      </svg>
      <figcaption class="muted small">{text}</figcaption>
    </figure>
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
