// Builds a small image from this machine's programs: busybox for sh, the given binaries and the libraries ldd lists.
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from './ferryd.js';
import type { DockerHost } from './dockerhost.js';

/** The shared libraries a binary loads (ldd), the loader included. */
export async function libsOf(bin: string): Promise<string[]> {
  const r = await run('ldd', [bin]);
  if (r.code !== 0) throw new Error(`ldd ${bin}: ${r.stderr}`);
  return [...r.stdout.matchAll(/(\/[^\s]+) \(0x/g)].map((m) => m[1]!);
}

/** cp -a of a file or tree into the rootfs at the same path. */
export async function place(root: string, path: string): Promise<void> {
  await mkdir(join(root, dirname(path)), { recursive: true });
  const r = await run('cp', ['-aL', path, join(root, path)]);
  if (r.code !== 0) throw new Error(`cp ${path}: ${r.stderr}`);
}

/** Imports `tag` into the engine: busybox (sh and its applets in /bin) and `binaries` at their own paths, with their libraries. */
export async function importBinaryImage(host: DockerHost, tag: string, binaries: string[]): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-bin-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) await mkdir(join(root, d), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);
    await copyFile('/bin/busybox', join(root, 'bin/busybox'));
    for (const a of ['sh', 'cat', 'ls', 'test', 'sleep', 'echo', 'id', 'seq', 'dd', 'df', 'sync', 'rm', 'wc', 'sha256sum']) await symlink('busybox', join(root, 'bin', a));
    const libs = new Set<string>();
    for (const b of binaries) for (const l of await libsOf(b)) libs.add(l);
    for (const p of [...binaries, ...libs]) await place(root, p);
    const tar = join(work, 'image.tar');
    const t = await run('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.']);
    if (t.code !== 0) throw new Error(`tar of the rootfs failed: ${t.stderr}`);
    await host.dockerOk(['import', '--message', `${tag} for ferry tests`, '--change', 'ENV PATH=/usr/bin:/bin', tar, tag]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
