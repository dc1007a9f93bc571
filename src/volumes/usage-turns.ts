/** Which background usage pass looks at which idle shared volume: the look-ups at the NAS spread over passes, or saved by a listing of the pool made one pass in several. */

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
 * is left alone while the listings of the pool (one pass in `spread`: listsIn) show its directory with the
 * signature it had at its last look, and between two listings; the others (with snapshots, whose new ones
 * change only their snapshots directory, or in a pool without the listing) are looked at by turns.
 */
export class SharedLooks {
  /** Volume key → its directory's signature, as the listing before its last look showed it. */
  private readonly seen = new Map<string, string>();

  constructor(private readonly spread: number) {}

  /**
   * Whether pass `turn` need not look at the volume: `idle` (measured, not mounted or snapshotted here since) and
   * either, without snapshots in a pool that can be listed (`listable`), unchanged since its last look by this
   * pass's listing (`rootSig`; changed, or not looked at in a pass that listed yet: looked at in this one), or in
   * a pass without a listing (listsIn) resting until the next one; or, with snapshots, or without a listing to go
   * by, not its turn.
   */
  rests(k: string, name: string, idle: boolean, hasSnapshots: boolean, listable: boolean, rootSig: string | undefined, turn: number): boolean {
    if (!idle) return false;
    if (!hasSnapshots && listable) {
      if (!this.listsIn(turn)) return true;
      if (rootSig !== undefined) return this.seen.get(k) === rootSig;
    }
    return !isTurnOf(name, turn, this.spread);
  }

  /**
   * Does pass `turn` list the pool? One pass in `spread`: a listing of 10,000 volume directories is few operations
   * but heavy ones (on GlusterFS ~170 ms of the brick's CPU, ~200 ms of the lister's, docs/shared-pools.md), and
   * every node makes its own. Between listings an idle volume without snapshots rests (it has its figures); a
   * change made on another node (a restore, a first snapshot) shows within `spread` passes, as for volumes with
   * snapshots.
   */
  listsIn(turn: number): boolean {
    return turn % this.spread === 0 || this.spread <= 1;
  }

  /**
   * The volume was looked at in pass `turn`; its directory's signature was `rootSig` before the look (undefined:
   * no listing, and then, in a pass that lists, none of the volume: it rests on no listing until it is seen in one).
   */
  looked(k: string, rootSig: string | undefined, turn: number): void {
    if (rootSig !== undefined) this.seen.set(k, rootSig);
    else if (this.listsIn(turn)) this.seen.delete(k);
  }

  /** Forget the volumes that are gone (`breathe`: util/breather.ts). */
  async prune(live: (k: string) => boolean, breathe: () => Promise<void> | undefined): Promise<void> {
    for (const k of [...this.seen.keys()]) {
      await breathe();
      if (!live(k)) this.seen.delete(k);
    }
  }
}
