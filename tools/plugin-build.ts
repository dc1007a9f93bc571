/**
 * `npm run plugin [-- --out DIR] [--no-gluster] [--tar FILE]`: build Ferry as a managed (v2) Docker plugin
 * directory, DIR/config.json + DIR/rootfs/, from this machine only (no registry, no network):
 *
 * - Node (the running `node` binary, stripped) and the shared libraries `ldd` lists for it;
 * - the built program (dist/src, its bundle dist/bundle, the web UI, bin/ferry, package.json) and the production dependencies,
 *   copied from node_modules as `npm ls --omit=dev` lists them;
 * - the programs ferryd runs (mount, umount, cp for reflinks, btrfs, flock, sync, mkfifo, mknod, sh) and
 *   their libraries; with GlusterFS installed (and no --no-gluster) the FUSE client: mount.glusterfs,
 *   glusterfs, its translators, and the shell tools mount.glusterfs needs (busybox applets).
 *
 * Then: `docker plugin create ferry DIR && docker plugin enable ferry`: under the name ferry (= ferry:latest)
 * at every version, so that volumes keep their driver across upgrades (docs/managed-plugin.md).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pluginConfig } from './plugin-config.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const argValue = (flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const out = resolve(argValue('--out') ?? join(repo, 'build/plugin'));
const tarFile = argValue('--tar');
const withGluster = !args.includes('--no-gluster') && existsSync('/usr/sbin/glusterfs');
const rootfs = join(out, 'rootfs');
const t0 = Date.now();

const which = (name: string): string | undefined => {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (existsSync(join(d, name))) return realpathSync(join(d, name));
  return undefined;
};

/** Copy a host file to the same path in the rootfs (symlinks recreated, their targets copied too). */
function copyHostFile(path: string): void {
  const dest = join(rootfs, path);
  if (existsSync(dest) || isLink(dest)) return;
  mkdirSync(dirname(dest), { recursive: true });
  const st = lstatSync(path);
  if (st.isSymbolicLink()) {
    const target = readlinkSync(path);
    symlinkSync(target, dest);
    copyHostFile(resolve(dirname(path), target));
    return;
  }
  copyFileSync(path, dest);
  chmodSync(dest, st.mode & 0o7777);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The shared libraries a binary loads, as `ldd` resolves them on this machine. */
function libsOf(binary: string): string[] {
  let text: string;
  try {
    text = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return []; // static, or a script
  }
  const libs: string[] = [];
  for (const line of text.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** A program and its libraries; `as` is where it goes in the rootfs (default: its host path). */
function copyProgram(host: string, as = host): void {
  const dest = join(rootfs, as);
  mkdirSync(dirname(dest), { recursive: true });
  if (!existsSync(dest)) {
    copyFileSync(host, dest);
    chmodSync(dest, 0o755);
  }
  for (const lib of libsOf(host)) copyHostFile(lib);
}

function sh(cmd: string, argv: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, argv, { encoding: 'utf8', cwd: opts.cwd ?? repo, maxBuffer: 64 << 20 });
}

rmSync(out, { recursive: true, force: true });
mkdirSync(rootfs, { recursive: true });
for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'var/log/glusterfs', 'etc', 'host/var/lib', 'host/mnt', 'mnt/volumes', 'host-run', 'usr/bin', 'usr/sbin']) mkdirSync(join(rootfs, d), { recursive: true });
chmodSync(join(rootfs, 'tmp'), 0o1777);
// merged /usr, as on Debian 12: /bin, /sbin, /lib, /lib64 are links
for (const d of ['bin', 'sbin', 'lib', 'lib64']) {
  mkdirSync(join(rootfs, 'usr', d), { recursive: true });
  symlinkSync(`usr/${d}`, join(rootfs, d));
}

// 1. Node, stripped of its debug info (Debian's binary carries ~40 MB of it)
const node = realpathSync(process.execPath);
execFileSync('strip', ['--strip-all', '-o', join(rootfs, 'usr/bin/node'), node]);
for (const lib of libsOf(node)) copyHostFile(lib);

// 2. the program and its production dependencies
const app = join(rootfs, 'ferry');
mkdirSync(app, { recursive: true });
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'ferry', version: pkg.version, type: 'module', private: true, dependencies: pkg.dependencies }, null, 2) + '\n');
cpSync(join(repo, 'bin'), join(app, 'bin'), { recursive: true });
cpSync(join(repo, 'dist/src'), join(app, 'dist/src'), { recursive: true, filter: (s) => !s.endsWith('.map') });
// (after dist/src: bin/ferry runs the bundle only when it is not older than dist/src/main.js)
cpSync(join(repo, 'dist/bundle'), join(app, 'dist/bundle'), { recursive: true });
if (existsSync(join(repo, 'dist/ui'))) cpSync(join(repo, 'dist/ui'), join(app, 'dist/ui'), { recursive: true, filter: (s) => !s.endsWith('.map') });
// what `npm ci --omit=dev` installs: every package of package-lock.json not marked dev (or devOptional),
// copied from node_modules at its place in the tree (optional ones for other platforms are not there)
const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean }> };
const nm = realpathSync(join(repo, 'node_modules'));
// (and what compiling a native module leaves beside its .node file: sources, objects, archives)
const junk = /\.(md|markdown|map|d\.ts|d\.mts|d\.cts|tsbuildinfo|c|cc|cpp|h|S|o|a)$|\/(test|tests|__tests__|\.github|example|examples|obj\.target)$/i;
let packages = 0;
for (const [path, meta] of Object.entries(lock.packages)) {
  if (!path.startsWith('node_modules/') || meta.dev || meta.devOptional) continue;
  const rel = path.slice('node_modules/'.length);
  const src = join(nm, rel);
  if (!existsSync(src)) {
    if (!meta.optional) throw new Error(`${path} is a production dependency but is not installed: run npm ci`);
    continue;
  }
  packages++;
  // nested node_modules are entries of their own in the lock file
  cpSync(src, join(app, 'node_modules', rel), { recursive: true, filter: (s) => s === src || (!relative(src, s).split('/').includes('node_modules') && !junk.test(s)) });
}

// 3. the programs ferryd runs, and a shell
for (const p of ['mount', 'umount', 'cp', 'sync', 'mkfifo', 'mknod', 'flock', 'btrfs']) {
  const host = which(p);
  if (!host) {
    process.stderr.write(`plugin: ${p} is not installed here, left out (pools that need it will say so)\n`);
    continue;
  }
  copyProgram(host, `/usr/bin/${p}`);
}
// sh and the small tools (for fenceCommand and mount.glusterfs): busybox when installed, else dash
const busybox = which('busybox');
const applets = ['sh', 'cat', 'echo', 'grep', 'sed', 'cut', 'stat', 'awk', 'ls', 'id', 'wc', 'uname', 'basename', 'dirname', 'mkdir', 'rm', 'sleep', 'printf', 'tr', 'head', 'tail', 'readlink', 'kill', 'ps', 'mountpoint', 'env', 'chmod', 'chown', 'ln', 'true', 'false', 'touch', 'du', 'df'];
if (busybox) {
  copyProgram(busybox, '/usr/bin/busybox');
  for (const a of applets) if (!existsSync(join(rootfs, 'usr/bin', a))) symlinkSync('busybox', join(rootfs, 'usr/bin', a));
} else {
  copyProgram(which('dash')!, '/usr/bin/sh');
}
// the GlusterFS FUSE client (what a `mount: {type: glusterfs}` pool runs)
if (withGluster) {
  copyProgram('/usr/sbin/glusterfs', '/usr/sbin/glusterfs');
  copyHostFile('/usr/sbin/mount.glusterfs');
  for (const f of ['fusermount', 'fusermount3', 'getfattr']) if (which(f)) copyProgram(which(f)!, `/usr/bin/${f}`);
  const gdir = '/usr/lib/x86_64-linux-gnu/glusterfs';
  cpSync(gdir, join(rootfs, gdir), { recursive: true });
  for (const so of sh('find', [gdir, '-name', '*.so']).split('\n').filter(Boolean)) for (const lib of libsOf(so)) copyHostFile(lib);
}

// 4. /etc: who is root, a mount table, no fstab entries
writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\n');
writeFileSync(join(rootfs, 'etc/fstab'), '');
writeFileSync(join(rootfs, 'etc/hosts'), '127.0.0.1 localhost\n');
symlinkSync('/proc/self/mounts', join(rootfs, 'etc/mtab'));
if (existsSync('/etc/ssl/certs/ca-certificates.crt')) copyHostFile('/etc/ssl/certs/ca-certificates.crt');

// 5. config.json
writeFileSync(join(out, 'config.json'), JSON.stringify(pluginConfig(pkg.version), null, 2) + '\n');

const kib = (p: string) => Number(sh('du', ['-sk', '--apparent-size', p]).split('\t')[0]);
let summary = `plugin directory ${out} (ferry ${pkg.version}, ${packages} npm packages${withGluster ? ', with the GlusterFS client' : ''}): ${(kib(out) / 1024).toFixed(1)} MiB`;
if (tarFile) {
  sh('tar', ['-C', out, '-czf', resolve(tarFile), '.']);
  summary += `; ${tarFile} (tar.gz): ${(statSync(resolve(tarFile)).size / (1 << 20)).toFixed(1)} MiB`;
}
process.stdout.write(`${summary}; built in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
process.stdout.write(`next: docker plugin create ferry ${out} && docker plugin enable ferry   (the same name at every version: docs/managed-plugin.md)\n`);
