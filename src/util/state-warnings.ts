/** Problems ferryd found in its own state and worked around (a corrupt file moved aside, ...): shown by `ferry status` and `ferry doctor`. */

export interface StateWarning {
  /** Stable, for scripts: e.g. `corrupt_file`. */
  code: string;
  /** The file concerned (where it was moved aside to, if it was). */
  file?: string;
  /** What was wrong and what ferryd assumed instead, for a person. */
  message: string;
  /** When it was noticed (ISO 8601). */
  at: string;
}

/** The daemon's list of warnings, one per key (a later warning of the same key replaces the earlier one). */
export class StateWarnings {
  private readonly items = new Map<string, StateWarning>();

  constructor(private readonly now: () => number = Date.now) {}

  add(key: string, w: Omit<StateWarning, 'at'>): void {
    this.items.set(key, { ...w, at: new Date(this.now()).toISOString() });
  }

  clear(key: string): void {
    this.items.delete(key);
  }

  list(): StateWarning[] {
    return [...this.items.values()].sort((a, b) => a.at.localeCompare(b.at));
  }
}
