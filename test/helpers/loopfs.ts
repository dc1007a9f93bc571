import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './ferryd.js';

export type FsKind = 'ext4' | 'btrfs' | 'xfs';

const mkfs: Record<FsKind, string[]> = {
  ext4: ['mkfs.ext4', '-q', '-F'],
  btrfs: ['mkfs.btrfs', '-q', '-f'],
  xfs: ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1'],
};

export function loopFsPrerequisites(kind: FsKind): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  const tool = mkfs[kind][0]!;
  if (!['/sbin', '/usr/sbin', '/usr/bin', '/bin'].some((d) => existsSync(join(d, tool)))) missing.push(tool);
  return missing;
}

export interface LoopFs {
  kind: FsKind;
  mountpoint: string;
  destroy(): Promise<void>;
}

/** A filesystem of `kind` in a sparse image file, loop-mounted on a temporary directory; `mkfsFlags` go to its mkfs. */
export async function makeLoopFs(kind: FsKind, sizeMiB = 1024, mkfsFlags: string[] = []): Promise<LoopFs> {
  const dir = await mkdtemp(join(tmpdir(), `ferry-${kind}-`));
  const image = join(dir, 'image');
  const mountpoint = join(dir, 'mnt');
  const must = async (cmd: string, args: string[]) => {
    const r = await run(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  try {
    await must('truncate', ['-s', `${sizeMiB}M`, image]);
    const [tool, ...flags] = mkfs[kind];
    await must(tool!, [...flags, ...mkfsFlags, image]);
    await must('mkdir', [mountpoint]);
    // mount -o loop sets the loop device to detach itself when unmounted
    await must('mount', ['-o', 'loop', image, mountpoint]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true }); // nothing is mounted: the mount is the last step
    throw err;
  }
  return {
    kind,
    mountpoint,
    destroy: async () => {
      for (let i = 0; i < 50; i++) {
        const r = await run('umount', [mountpoint]);
        if (r.code === 0 || /not mounted/.test(r.stderr)) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
