/** Manifests on disk, read and written with synchronous calls (in the tree worker's threads). */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseManifest, type Manifest } from './manifest.js';

export const manifestPath = (snaps: string, id: string) => `${snaps}/${id}.manifest.json`;

/** The manifest of snapshot `id`, or undefined for a snapshot without one (btrfs; a complete tree). */
export function readManifestSync(snaps: string, id: string): Manifest | undefined {
  let text: string;
  try {
    text = readFileSync(manifestPath(snaps, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseManifest(text);
}

export function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const d = openSync(dirname(path), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}
