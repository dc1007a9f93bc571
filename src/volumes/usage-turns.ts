/** Which background usage pass looks at which idle shared volume: the look-ups at the NAS spread over passes, or saved by one listing. */

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

/**
 * The idle shared volumes a pass can leave alone. A look at one volume (the inode of its data, its snapshots
 * directory) costs the NAS a LOOKUP or two per volume: 10,000 volumes, ~3,000 a pass even spread over ten
 * passes (bench/share-scale.ts). What that look watches for changes the volume's own directory too: a restore
 * renames the data in it, a first snapshot makes the snapshots directory in it. So a volume without snapshots
 * whose directory kept the signature it had at its last look, in one listing of the pool per pass, is left
 * alone in every pass; the others (with snapshots, whose new ones change only their snapshots directory, or in
 * a pool without the listing) are looked at by turns.
 */
export class SharedLooks {
  /** Volume key → its directory's signature, as the listing before its last look showed it. */
  private readonly seen = new Map<string, string>();

  constructor(private readonly spread: number) {}

  /**
   * Whether this pass need not look at the volume: `idle` (measured, not mounted or snapshotted here since) and
   * either unchanged by the listing (`rootSig`, undefined: no listing) or, with snapshots, not its turn.
   */
  rests(k: string, name: string, idle: boolean, hasSnapshots: boolean, rootSig: string | undefined, turn: number): boolean {
    if (!idle) return false;
    if (!hasSnapshots && rootSig !== undefined && this.seen.get(k) === rootSig) return true;
    return !isTurnOf(name, turn, this.spread);
  }

  /** The volume was looked at in this pass; its directory's signature was `rootSig` before the look. */
  looked(k: string, rootSig: string | undefined): void {
    if (rootSig === undefined) this.seen.delete(k);
    else this.seen.set(k, rootSig);
  }

  /** Forget the volumes that are gone (`breathe`: util/breather.ts). */
  async prune(live: (k: string) => boolean, breathe: () => Promise<void> | undefined): Promise<void> {
    for (const k of [...this.seen.keys()]) {
      await breathe();
      if (!live(k)) this.seen.delete(k);
    }
  }
}
