// Builds a PostgreSQL image (`pg`) from this machine's Debian packages: busybox, the server binaries and what ldd lists.
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './ferryd.js';
import { libsOf, place } from './binary-image.js';
import type { DockerHost } from './dockerhost.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const PG_SHARE = '/usr/share/postgresql/15';
/** The image's postgres user: the volume's data directory is made for it with -o uid= -o gid= -o mode=0700. */
export const PG_UID = 70;

/** What a test needs on this machine to build the image: Debian's postgresql-15 and busybox-static. */
export function pgPrerequisites(): string[] {
  return [`${PG_BIN}/postgres`, `${PG_BIN}/initdb`, `${PG_BIN}/psql`, PG_SHARE, '/bin/busybox'].filter((p) => !existsSync(p)).map((p) => `${p} (apt-get install postgresql-15 busybox-static)`);
}

/**
 * Imports `pg:latest` into the engine: postgres, initdb and pg_ctl of Debian's PostgreSQL 15 with their libraries
 * and share dir, busybox for sh, a postgres user (uid 70) and UTC as the only time zone. Its server runs as pid 1
 * (`exec postgres`), as in the official image, so PostgreSQL's own pid-file check cannot see a second server.
 */
export async function importPgImage(host: DockerHost): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-pg-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'var/run/postgresql', 'var/lib/postgresql']) await mkdir(join(root, d), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);
    await copyFile('/bin/busybox', join(root, 'bin/busybox'));
    for (const a of ['sh', 'cat', 'ls', 'test', 'sleep', 'echo', 'id']) await symlink('busybox', join(root, 'bin', a));
    const bins = ['postgres', 'initdb', 'pg_ctl'].map((b) => join(PG_BIN, b));
    const libs = new Set<string>();
    for (const b of bins) for (const l of await libsOf(b)) libs.add(l);
    for (const p of [...bins, ...libs, PG_SHARE, '/usr/share/zoneinfo/UTC', '/usr/share/zoneinfo/Etc/UTC']) await place(root, p);
    // PostgreSQL's extension libraries (plpgsql, needed by initdb) and their directory
    await place(root, '/usr/lib/postgresql/15/lib');
    await writeFile(join(root, 'etc/passwd'), `root:x:0:0:root:/root:/bin/sh\npostgres:x:${PG_UID}:${PG_UID}:PostgreSQL:/var/lib/postgresql:/bin/sh\n`);
    await writeFile(join(root, 'etc/group'), `root:x:0:\npostgres:x:${PG_UID}:\n`);
    const chown = await run('chown', ['-R', `${PG_UID}:${PG_UID}`, join(root, 'var/run/postgresql'), join(root, 'var/lib/postgresql')]);
    if (chown.code !== 0) throw new Error(chown.stderr);
    const tar = join(work, 'pg.tar');
    const t = await run('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.']);
    if (t.code !== 0) throw new Error(`tar of the pg rootfs failed: ${t.stderr}`);
    await host.dockerOk(['import', '--message', 'PostgreSQL 15 for ferry tests', '--change', `ENV PATH=${PG_BIN}:/bin`, '--change', 'ENV TZ=UTC', tar, 'pg:latest']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The container command: initdb on first start, then postgres as pid 1 with its socket in the data directory
 * (so a client on the host reaches it through the pool) and no TCP.
 */
export const PG_COMMAND = [
  'sh', '-c',
  'test -f /pgdata/PG_VERSION || initdb -D /pgdata -U postgres --auth=trust --locale=C -E UTF8 >/dev/null && exec postgres -D /pgdata -k /pgdata -c listen_addresses= -c fsync=on -c synchronous_commit=on',
];
