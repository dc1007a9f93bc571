/** What was read of each entry of a shared directory, read again only when a listing of the directory shows the entry changed. */

/**
 * A signature must have been seen unchanged this long (by this node's clock) before it is trusted: a change made in
 * the same tick of the share's clock as a read leaves the signature as it was, and time stamps tick at least once a
 * second on the filesystems Ferry supports (the "racy" entries of git's index, handled the same way).
 */
export const SETTLE_MS = 1000;

interface Entry<T> {
  sig: string;
  value: T;
  /** When this signature was first read (this node's clock, ms). */
  since: number;
  /** Read again with the same signature at least SETTLE_MS after `since`: trusted until the signature changes. */
  settled: boolean;
}

/**
 * Per entry name (a file or a directory of the share), the value last read and the signature the listing showed
 * then (pools/share-sigs.ts: inode, mtime, ctime, size). An entry is read when it is new or its signature changed,
 * and again at each listing until its signature has held for SETTLE_MS, then not again until it changes: idle nodes
 * re-read nothing. A value that could not be read is tried again next time.
 */
export class ListedCache<T> {
  private entries = new Map<string, Entry<T>>();

  constructor(private readonly now: () => number = Date.now) {}

  async refresh(listing: Array<[string, string]>, read: (name: string) => Promise<T | undefined>): Promise<Map<string, T>> {
    const next = new Map<string, Entry<T>>();
    const out = new Map<string, T>();
    for (const [name, sig] of listing) {
      const cur = this.entries.get(name);
      let e: Entry<T> | undefined;
      if (cur?.sig === sig && cur.settled) e = cur;
      else {
        const at = this.now();
        const value = await read(name);
        const since = cur?.sig === sig ? cur.since : at;
        if (value !== undefined) e = { sig, value, since, settled: at - since >= SETTLE_MS };
      }
      if (!e) continue;
      next.set(name, e);
      out.set(name, e.value);
    }
    this.entries = next;
    return out;
  }
}
