/** Words for a volume's usage figures that the CLI and the Hub both show (one text, so they say the same). */
import type { VolumeUsage } from './types.js';

/** What holds the space its snapshots take: "3 snapshot(s)", "1 snapshot(s) and 4 commit(s)", "…, 2 commit(s) and 1 branch's saved data". */
export function snapshotHolders(u: Pick<VolumeUsage, 'snapshots' | 'commits' | 'worktrees'>): string {
  const c = u.commits ?? 0;
  const w = u.worktrees ?? 0;
  const parts = [`${u.snapshots - c - w} snapshot(s)`, ...(c ? [`${c} commit(s)`] : []), ...(w ? [`${w === 1 ? "1 branch's" : `${w} branches'`} saved data`] : [])];
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts[0]!;
}
