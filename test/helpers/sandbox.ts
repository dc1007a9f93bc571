// A real ferryd whose data dir, pools and backup target all live in one sandbox directory, and the checks that it wrote nowhere else.
import { mkdtemp, mkdir, readdir, rm, writeFile, lstat } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { startFerryd, type Ferryd } from './ferryd.js';

export interface Sandbox {
  /** The sandbox root: ROOT/outer/inner/ferry is ferryd's directory (sockets, log, data). */
  root: string;
  f: Ferryd;
  /** The second pool (ROOT/outer/inner/pool2) and the configured backup target `t` (ROOT/targets/t). */
  pool2: string;
  target: string;
  /** The directories ferryd may write in; everything else in the sandbox must stay as it was. */
  allowed: string[];
  destroy(): Promise<void>;
}

export async function startSandbox(): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-fuzz-'));
  const dir = join(root, 'outer', 'inner', 'ferry');
  const pool2 = join(root, 'outer', 'inner', 'pool2');
  const target = join(root, 'targets', 't');
  await mkdir(dir, { recursive: true });
  await mkdir(join(root, 'targets'), { recursive: true });
  const config = join(root, 'ferry.yaml');
  await writeFile(config, JSON.stringify({ pools: { pool2: { path: pool2 } }, backupTargets: { t: { url: `file://${target}`, password: 'fuzz-password' } } }));
  const f = await startFerryd({ dir, extraArgs: ['--config', config], logLevel: 'info' });
  return {
    root,
    f,
    pool2,
    target,
    allowed: [f.dataDir, pool2, join(root, 'targets')],
    destroy: async () => {
      await f.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

const inside = (p: string, dir: string) => p === dir || p.startsWith(dir + sep);

/** Every path in the sandbox outside the allowed directories, with its type: must not change while ferryd runs. */
export async function outsideTree(sb: Sandbox): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (sb.allowed.some((a) => inside(p, a))) continue;
      out.push(`${p} ${e.isDirectory() ? 'dir' : e.isSocket() ? 'socket' : 'file'}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(sb.root);
  return out.sort();
}

/**
 * The places a traversal in one of `strings` could reach from the directories ferryd joins names onto,
 * minus those inside the allowed directories. Each is returned with whether it exists now, to compare later.
 */
export function traversalTargets(sb: Sandbox, strings: string[]): Map<string, boolean> {
  const bases: string[] = [];
  for (const a of [sb.f.dataDir, sb.pool2]) {
    bases.push(a, join(a, 'volumes'), join(a, 'trash'), join(a, 'catalog'), join(a, 'catalog', 'volumes'), join(a, 'catalog', 'trash'), join(a, 'snapshots'), join(a, 'ro'));
  }
  const found = new Map<string, boolean>();
  for (const s of strings) {
    if (s.includes('\0')) continue; // no system call takes such a path; ferryd must refuse it (checked by the status)
    const segments = s.split('/').filter((x) => x !== '' && x !== '.' && x !== '..');
    const candidates = bases.flatMap((b) => [resolve(b, s), resolve(b, `${s}.json`), resolve(b, s, 'data')]);
    // a name's last segment anywhere /tmp or / could be reached
    for (const seg of segments.slice(-1)) candidates.push(join(tmpdir(), seg), join('/', seg));
    for (const c of candidates) {
      if (sb.allowed.some((a) => inside(c, a)) || found.has(c) || c.length > 4000) continue;
      found.set(c, exists(c));
    }
  }
  return found;
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The traversal targets that exist now but did not before. */
export function newlyCreated(before: Map<string, boolean>): string[] {
  return [...before].filter(([p, was]) => !was && exists(p)).map(([p]) => p);
}

/**
 * The catalog and the disk agree: every volume `ferry volume ls --json` lists has its data directory in its
 * pool, every directory in a pool's volumes/ has its volume, every trash entry its directory and back.
 */
export async function catalogProblems(sb: Sandbox): Promise<string[]> {
  const problems: string[] = [];
  const ls = await sb.f.cli('--json', 'volume', 'ls');
  if (ls.code !== 0) return [`ferry volume ls --json exited ${ls.code}: ${ls.stderr}`];
  const listed = JSON.parse(ls.stdout) as { volumes?: Array<{ name: string; pool: string }> } | Array<{ name: string; pool: string }>;
  const vols = Array.isArray(listed) ? listed : (listed.volumes ?? []);
  const roots: Record<string, string> = { local: sb.f.dataDir, pool2: sb.pool2 };
  const onDisk = new Set<string>();
  for (const [pool, r] of Object.entries(roots)) {
    for (const n of await readdir(join(r, 'volumes')).catch(() => [])) onDisk.add(`${pool}/${n}`);
  }
  const inCatalog = new Set(vols.map((v) => `${v.pool}/${v.name}`));
  for (const v of vols) {
    const d = join(roots[v.pool] ?? '/nonexistent', 'volumes', v.name, 'data');
    if (!(await lstat(d).then((s) => s.isDirectory()).catch(() => false))) problems.push(`volume ${v.name} (pool ${v.pool}) has no directory ${d}`);
  }
  for (const d of onDisk) if (!inCatalog.has(d)) problems.push(`directory ${d} has no volume in ferry volume ls`);
  const trash = await sb.f.cli('--json', 'trash', 'ls');
  if (trash.code === 0) {
    const t = JSON.parse(trash.stdout) as { trash?: Array<{ id: string; pool: string }> } | Array<{ id: string; pool: string }>;
    const entries = Array.isArray(t) ? t : (t.trash ?? []);
    const ids = new Set(entries.map((e) => `${e.pool}/${e.id}`));
    const dirs = new Set<string>();
    for (const [pool, r] of Object.entries(roots)) for (const n of await readdir(join(r, 'trash')).catch(() => [])) dirs.add(`${pool}/${n}`);
    for (const id of ids) if (!dirs.has(id)) problems.push(`trash entry ${id} has no directory`);
    for (const d of dirs) if (!ids.has(d)) problems.push(`trash directory ${d} has no entry in ferry trash ls`);
  } else {
    problems.push(`ferry trash ls --json exited ${trash.code}: ${trash.stderr}`);
  }
  return problems;
}
