// The space a volume takes, as the API reports it (shared with the web UI: no imports here).

export interface VolumeUsage {
  /** The live data (allocated bytes, hard links once, like `du -s`); null until first measured. */
  dataBytes: number | null;
  /** When the data was last walked (the walk is cached and refreshed in the background); null if never. */
  measuredAt: string | null;
  /** What the snapshots hold and the data does not (freed if every snapshot went); null where not measured. */
  snapshotBytes: number | null;
  /** Snapshots of the volume (with the history's hidden worktrees). */
  snapshots: number;
  /** Why snapshotBytes is null (btrfs, reflink pools). */
  snapshotNote?: string;
  /** Removed volumes of the same name in the trash (data and snapshots); null while one is not measured yet. */
  trashBytes: number | null;
}

export interface TrashUsage {
  /** What the trash entry holds (data and snapshots); null until measured. */
  bytes: number | null;
}
