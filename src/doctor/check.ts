/** One finding of `ferry doctor`: what was checked, whether it is well, and what to do when not. */

export type CheckState = 'ok' | 'problem' | 'skipped';

export interface DoctorCheck {
  /** Stable, for scripts: e.g. `lock`, `pool:nas`, `orphan-dir:local/x`. */
  check: string;
  state: CheckState;
  /** What was found, for a person. */
  message: string;
  /** What to do about a problem. */
  fix?: string;
}

export const ok = (check: string, message: string): DoctorCheck => ({ check, state: 'ok', message });
export const problem = (check: string, message: string, fix?: string): DoctorCheck => ({ check, state: 'problem', message, ...(fix ? { fix } : {}) });
export const skipped = (check: string, message: string): DoctorCheck => ({ check, state: 'skipped', message });

export function problems(checks: DoctorCheck[]): DoctorCheck[] {
  return checks.filter((c) => c.state === 'problem');
}
