import { request, Agent } from 'node:http';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** A keep-alive client for a plugin socket, as Docker's plugin client keeps its connection. */
export function pluginClient(socketPath: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const call = (method: string, body: unknown): Promise<{ Err?: string; [k: string]: unknown }> =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = request({ socketPath, agent, method: 'POST', path: `/VolumeDriver.${method}`, headers: { 'content-length': Buffer.byteLength(payload) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      });
      req.on('error', reject);
      req.end(payload);
    });
  return { call, close: () => agent.destroy() };
}

/** Volumes v00000 … v(n-1) made through Docker's Create at a plugin socket, 64 at a time (scale and start-up benches). */
export async function createVolumes(pluginSocket: string, n: number): Promise<void> {
  const c = pluginClient(pluginSocket);
  try {
    for (let k = 0; k < n; k += 64) {
      await Promise.all(Array.from({ length: Math.min(64, n - k) }, async (_, j) => {
        const r = await c.call('Create', { Name: `v${String(k + j).padStart(5, '0')}` });
        if (r.Err) throw new Error(`Create: ${r.Err}`);
      }));
    }
  } finally {
    c.close();
  }
}

export const fmtMs = (ms: number) => `${ms.toFixed(2)} ms`;

/** The 1, 5 and 15 minute load averages, as the reports record them. */
export const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** A command's trimmed output for a report's machine table, or `?` when it fails. */
export function shOut(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

/** Progress lines on stderr, `[bench/NAME +SECONDSs] message`, timed from the call. */
export function progressLog(name: string): (msg: string) => void {
  const t0 = performance.now();
  return (msg) => process.stderr.write(`[bench/${name} +${((performance.now() - t0) / 1000).toFixed(0)}s] ${msg}\n`);
}

/** A process's resident memory (VmRSS), in MB. */
export const rssMB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** The milliseconds `fn` takes. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** A small seeded PRNG (mulberry32): the same sizes and picks every run. */
export function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** All regular files under `root`, in a stable (sorted) walk order, with sizes. */
export function listFiles(root: string, rel = '', out: Array<{ rel: string; size: number }> = []) {
  for (const e of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${e}` : e;
    const st = lstatSync(join(root, r));
    if (st.isDirectory()) listFiles(root, r, out);
    else if (st.isFile()) out.push({ rel: r, size: st.size });
  }
  return out;
}

/** Ctrl-C or SIGTERM: clean up (engines, mounts, temp dirs), then exit 130. */
export function onInterrupt(cleanup: () => Promise<unknown>, progress: (msg: string) => void): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      progress(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
}

/** Report lines: printed as they come and kept for the results file. */
export function reporter(): { out: string[]; emit: (line?: string) => void } {
  const out: string[] = [];
  return {
    out,
    emit: (line = '') => {
      out.push(line);
      console.log(line);
    },
  };
}

/**
 * The in-container write workloads (busybox sh, timed inside the container with `ts %.s`: µs, container start-up
 * not counted): `big`, dd of `bigMiB` MiB with conv=fsync; `small`, `smallFiles` files of 4 KiB then sync (printf
 * and the loop are shell built-ins: no fork per file, the file system is what is measured). Each prints
 * `T START END CHECK`; the data is removed and synced after (not timed).
 */
export function writeWorkloads(bigMiB: number, smallFiles: number): { big: string; small: string; expect: { big: string; small: string } } {
  const STAMP = '$(echo | ts %.s)';
  return {
    big: `set -e; a=${STAMP}; dd if=/dev/zero of=/data/big bs=1M count=${bigMiB} conv=fsync 2>/dev/null; b=${STAMP}; echo "T $a $b $(stat -c %s /data/big)"; rm -f /data/big; sync`,
    small:
      `set -e; mkdir /data/s; blk=$(head -c 4096 /dev/zero | tr '\\0' x); a=${STAMP}; i=0; ` +
      `while [ $i -lt ${smallFiles} ]; do printf %s "$blk" > /data/s/f$i; i=$((i+1)); done; sync; b=${STAMP}; ` +
      `echo "T $a $b $(ls /data/s | wc -l) $(stat -c %s /data/s/f0)"; rm -rf /data/s; sync`,
    expect: { big: String(bigMiB * 1024 * 1024), small: `${smallFiles} 4096` },
  };
}

/** The seconds a workload's `T START END CHECK` line says it took; throws when the line is missing or CHECK is not `expect`. */
export function workloadSeconds(text: string, expect: string, what: string): number {
  const m = /^T (\d+)\.(\d{6})\s+(\d+)\.(\d{6})\s+(.*)$/m.exec(text);
  if (!m) throw new Error(`${what}: no timing line in ${JSON.stringify(text)}`);
  if (m[5]!.trim() !== expect) throw new Error(`${what}: wrote "${m[5]!.trim()}", expected "${expect}"`);
  return ((Number(m[3]) - Number(m[1])) * 1e6 + (Number(m[4]) - Number(m[2]))) / 1e6;
}
