/** The usage figures of shared volumes, exchanged with the other nodes: what they measured, read each pass; what this node measured, published when it changes. */
import type { NodeUsage, PublishedUsage } from '../cluster/shared-store.js';
import type { VolumeInfo } from './service.js';

/**
 * How the nodes of a cluster share the work (implemented by cluster/cluster.ts): a shared volume is walked by
 * one node, the one that runs its schedules, which publishes its figures in the pool; the others read them.
 * Without this, every node would stat every shared volume on every pass (N nodes × V volumes at the NAS).
 */
export interface UsageExchange {
  readonly active: boolean;
  sharedPools(): string[];
  publishUsage(pool: string, volumes: Record<string, PublishedUsage>): Promise<void>;
  usageElsewhere(pool: string): Promise<NodeUsage[]>;
}

/** One incarnation of a volume name. */
const usageKey = (v: { name: string; createdAt: string }) => `${v.name}\0${v.createdAt}`;

/**
 * usageKey, kept by name: a list asks it of 10,000 volumes, and a key made afresh is hashed again at each
 * lookup (10,000 volumes: ~2 ms against ~0.3 ms). Names of removed volumes are dropped with everything else
 * once there are too many.
 */
export class UsageKeys {
  private readonly memo = new Map<string, { createdAt: string; key: string }>();

  of(v: { name: string; createdAt: string }): string {
    const m = this.memo.get(v.name);
    if (m?.createdAt === v.createdAt) return m.key;
    if (this.memo.size >= 100_000) this.memo.clear();
    const key = usageKey(v);
    this.memo.set(v.name, { createdAt: v.createdAt, key });
    return key;
  }

  /** Take `key`, read from a file, as the key of its volume (so the lookups use that very string); returns it. */
  seed(key: string): string {
    const cut = key.indexOf('\0');
    if (cut > 0) this.memo.set(key.slice(0, cut), { createdAt: key.slice(cut + 1), key });
    return key;
  }
}

export class UsageExchanger {
  /** `keys`: the tracker's, so that the look-ups here use the strings its maps were filled with. */
  constructor(private readonly keys: UsageKeys = new UsageKeys()) {}

  /** Shared volumes as the other nodes measured them, by key (read each pass). */
  private remote = new Map<string, PublishedUsage[]>();
  /** What was last published per shared pool (written again only when it changes). */
  private readonly published = new Map<string, string>();
  /** When the last exchange of figures began (ISO): what was measured since then on request is fresh. */
  private lastExchange = '';

  /** The other nodes' figures of one incarnation of a volume (no I/O). */
  remoteOf(key: string): PublishedUsage[] {
    return this.remote.get(key) ?? [];
  }

  /**
   * Read the other nodes' figures of each shared pool, then publish this node's (`localOf`): what it measured in
   * this pass (`mine`), and any older walk of its own that is still the newest anywhere (a walk after an Unmount
   * here). A pool that is not available keeps the figures last known; one whose exchange fails is told to `failed`.
   */
  async exchange(
    ex: UsageExchange,
    vols: VolumeInfo[],
    mine: Set<string>,
    available: (pool: string) => Promise<boolean>,
    localOf: (v: VolumeInfo) => PublishedUsage | undefined,
    breathe: () => Promise<void> | undefined,
    failed: (pool: string, err: unknown) => void,
  ): Promise<void> {
    const startedAt = new Date().toISOString();
    const remote = new Map<string, PublishedUsage[]>();
    for (const pool of ex.sharedPools()) {
      const inPool = vols.filter((v) => v.pool === pool);
      if (!(await available(pool))) {
        for (const v of inPool) {
          const k = this.keys.of(v);
          const known = this.remote.get(k);
          if (known) remote.set(k, known); // the last known
        }
        continue;
      }
      try {
        const byName = new Map(inPool.map((v) => [v.name, v]));
        for (const n of await ex.usageElsewhere(pool)) {
          for (const [name, u] of Object.entries(n.volumes)) {
            const v = byName.get(name);
            if (!v || v.createdAt !== u.createdAt) continue;
            const k = this.keys.of(v);
            remote.set(k, [...(remote.get(k) ?? []), u]);
          }
        }
        const out: Record<string, PublishedUsage> = {};
        // (compared with what was published as text made piece by piece: 10,000 entries in one JSON.stringify, and
        // the loop around it, held the event loop for tens of milliseconds)
        const pieces: string[] = [];
        for (const v of inPool) {
          await breathe();
          const u = localOf(v);
          if (!u) continue;
          const k = this.keys.of(v);
          const others = remote.get(k) ?? [];
          // besides its own: a figure measured here on request since the last exchange, when it is the newest
          // (an older walk of a volume another node has since taken over is not published again and again)
          const fresh = !!u.measuredAt && u.measuredAt >= this.lastExchange;
          if (mine.has(k) || (fresh && others.every((o) => (o.measuredAt ?? '') < u.measuredAt!))) {
            out[v.name] = u;
            pieces.push(`${JSON.stringify(v.name)}:${JSON.stringify(u)}`);
          }
        }
        const text = pieces.join(',');
        if (this.published.get(pool) !== text) {
          await ex.publishUsage(pool, out);
          this.published.set(pool, text);
        }
      } catch (err) {
        failed(pool, err);
      }
    }
    this.remote = remote;
    this.lastExchange = startedAt;
  }
}
