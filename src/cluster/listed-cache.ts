/** What was read of each entry of a shared directory, read again only when a listing of the directory shows the entry changed. */

interface Entry<T> {
  sig: string;
  value: T;
  /** Read again at the next listing even if its signature is the same: a change made in the same clock tick as the read leaves the signature as it was. */
  settled: boolean;
}

/**
 * Per entry name (a file or a directory of the share), the value last read and the signature the listing showed
 * then (pools/share-sigs.ts: inode, mtime, ctime, size). An entry is read when it is new or its signature changed,
 * and once more at the listing after that (a directory's mtime may tick coarser than its changes), then not
 * again until it changes: idle nodes re-read nothing. A value that could not be read is tried again next time.
 */
export class ListedCache<T> {
  private entries = new Map<string, Entry<T>>();

  async refresh(listing: Array<[string, string]>, read: (name: string) => Promise<T | undefined>): Promise<Map<string, T>> {
    const next = new Map<string, Entry<T>>();
    const out = new Map<string, T>();
    for (const [name, sig] of listing) {
      const cur = this.entries.get(name);
      let e: Entry<T> | undefined;
      if (cur?.sig === sig && cur.settled) e = cur;
      else {
        const value = await read(name);
        if (value !== undefined) e = { sig, value, settled: cur?.sig === sig };
      }
      if (!e) continue;
      next.set(name, e);
      out.set(name, e.value);
    }
    this.entries = next;
    return out;
  }
}
