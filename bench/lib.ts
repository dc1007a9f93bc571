import { request, Agent } from 'node:http';

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
