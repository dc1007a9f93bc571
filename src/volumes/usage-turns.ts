/** Which background usage pass looks at which idle shared volume: the look-ups at the NAS spread over passes. */

/** The default: each idle shared volume is looked at in one pass out of this many (5 minutes with 30 s passes). */
export const SHARED_SPREAD = 10;

/**
 * Whether pass number `turn` looks at the idle shared volume `name` when one pass in `spread` does (by a hash of
 * the name, so every pass takes about 1/spread of the volumes, and each volume its own pass).
 */
export function isTurnOf(name: string, turn: number, spread: number): boolean {
  if (spread <= 1) return true;
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return h % spread === turn % spread;
}
