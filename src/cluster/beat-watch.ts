/** Which nodes of one shared pool are alive, from one listing of its heartbeat directory per look: a heartbeat is opened only when first seen or before its node is called dead. */
import type { NodeBeat } from './shared-store.js';

/** What the watch needs of the pool's store. */
export interface BeatSource {
  /** `[NODE.json, signature]` of the heartbeat files (one directory listing; see pools/share-sigs.ts). */
  beatSigs(): Promise<Array<[string, string]>>;
  /** One node's heartbeat, read (undefined: none, or unreadable). */
  beatOf(node: string): Promise<NodeBeat | undefined>;
}

interface Seen {
  sig: string;
  /** This node's clock (ms) at which the node was last known to be alive: its stamp, or a look that found its file changed. */
  evidence: number;
}

/**
 * Reading every other node's heartbeat every interval costs the NAS N² opens per interval for N nodes (OPEN, READ,
 * FLUSH, RELEASE each). A heartbeat is rewritten (a new file, renamed over the old one) at every beat, so a look at
 * the directory tells which nodes beat since the last look: every live node's file has another signature. The watch
 * keeps, per node, the last time it had such evidence by this node's own clock (the look before the one that saw the
 * change: the beat landed after it), and the heartbeat's own stamp when it read the file.
 *
 * A node is called alive when either is within the node timeout; never dead on the listing alone: before a node is
 * called dead its heartbeat is read, and judged by its stamp as before (so a stale attribute cache cannot make a live
 * node dead, and nothing is called dead that reading every heartbeat would call alive). A node whose file did not
 * change is thus read once per look while it is dead, and not at all while it beats. The listing alone is one
 * OPENDIR, READDIRP, RELEASEDIR at the server: N nodes looking every interval cost O(N), not O(N²).
 *
 * Used where a late verdict costs nothing but time (which node runs schedules and measures, the listings); rwo
 * takeovers, removals and change marks read the heartbeats themselves.
 */
export class BeatWatch {
  private readonly seen = new Map<string, Seen>();
  private lastLook = -Infinity;
  private looking: Promise<Set<string>> | undefined;
  private lastAlive = new Set<string>();

  constructor(
    private readonly src: BeatSource,
    private readonly timeoutMs: number,
    private readonly now: () => number,
  ) {}

  /** The nodes alive now; the last look's answer when it is younger than `maxAgeMs`, else a new look. */
  alive(maxAgeMs = 0): Promise<Set<string>> {
    if (this.now() - this.lastLook <= maxAgeMs) return Promise.resolve(this.lastAlive);
    return (this.looking ??= this.look().finally(() => (this.looking = undefined)));
  }

  private async look(): Promise<Set<string>> {
    const at = this.now();
    const prevLook = this.lastLook;
    const sigs = await this.src.beatSigs();
    const alive = new Set<string>();
    const present = new Set<string>();
    for (const [file, sig] of sigs) {
      if (!file.endsWith('.json') || file.startsWith('.')) continue;
      const node = file.slice(0, -5);
      present.add(node);
      const prev = this.seen.get(node);
      let cur: Seen | undefined;
      if (prev && prev.sig !== sig) cur = { sig, evidence: Math.max(prev.evidence, prevLook) };
      else if (prev) cur = prev;
      if (!cur || at - cur.evidence > this.timeoutMs) {
        // first seen, or dead by what the listings showed: the heartbeat's own stamp decides
        const beat = await this.src.beatOf(node);
        const stamp = beat ? Date.parse(beat.lastSeen) : NaN;
        cur = { sig, evidence: Math.max(cur?.evidence ?? -Infinity, Number.isFinite(stamp) ? stamp : -Infinity) };
      }
      this.seen.set(node, cur);
      if (at - cur.evidence <= this.timeoutMs) alive.add(node);
    }
    for (const node of this.seen.keys()) if (!present.has(node)) this.seen.delete(node);
    this.lastLook = at;
    this.lastAlive = alive;
    return alive;
  }
}
