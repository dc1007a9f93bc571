import { request, Agent } from 'node:http';
import { lstatSync, readdirSync } from 'node:fs';
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

export const fmtMs = (ms: number) => `${ms.toFixed(2)} ms`;

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
