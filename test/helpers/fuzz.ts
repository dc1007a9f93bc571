// Settings and shared invariants of the fuzz tests: seed, number of runs, the tally, what a bad-input answer must look like.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { HttpAnswer } from './ferryd.js';
import { catalogProblems, newlyCreated, outsideTree, traversalTargets, type Sandbox } from './sandbox.js';

/** FERRY_FUZZ_SEED replays a run; FERRY_FUZZ_RUNS scales every property (default: the CI budget). */
export const SEED = process.env.FERRY_FUZZ_SEED !== undefined ? Number(process.env.FERRY_FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
const RUNS = process.env.FERRY_FUZZ_RUNS !== undefined ? Number(process.env.FERRY_FUZZ_RUNS) : undefined;
const DEFAULT_TOTAL = 4000;

/** The runs of one property: its share of FERRY_FUZZ_RUNS (or of the CI default). */
export function runs(share: number): number {
  return Math.max(1, Math.round((RUNS ?? DEFAULT_TOTAL) * share));
}

export function fuzzParams(share: number): fc.Parameters<unknown> {
  return {
    seed: SEED,
    numRuns: runs(share),
    includeErrorInReport: true,
    // counterexamples can be megabytes (huge bodies): the report keeps every line readable
    reporter: (d) => {
      if (!d.failed) return;
      const text = fc.defaultReportMessage(d) ?? 'property failed';
      throw new Error(text.split('\n').map((l) => (l.length > 800 ? `${l.slice(0, 800)}... (${l.length} characters)` : l)).join('\n'));
    },
  };
}

/** Cases tried per input class, printed at the end of a file for the issue's table. */
export class Tally {
  private readonly counts = new Map<string, number>();
  add(cls: string): void {
    this.counts.set(cls, (this.counts.get(cls) ?? 0) + 1);
  }
  print(title: string): void {
    const rows = [...this.counts].sort(([a], [b]) => a.localeCompare(b));
    console.log(`${title} (seed ${SEED}, replay with FERRY_FUZZ_SEED=${SEED}):\n${rows.map(([c, n]) => `  ${c.padEnd(28)} ${n}`).join('\n')}`);
  }
}

/**
 * Docker's plugins refuse a well-formed call for a reason of state (no such volume, in use) with a 500 and Err
 * (go-plugins-helpers does the same; Docker reads only Err): allowed, bad input never gets one.
 */
export const PLUGIN_STATE_REFUSAL = /^(no such volume: |volume \S+ is in use|volume \S+ already exists|.* already exists with other options)/;

const FIELD_WORDS = /\b(name|Name|volume|option|options|field|body|request|query|snapshot|ref|branch|commit|message|target|url|URL|backup|job|token|role|trash|endpoint|JSON|pool|access|from|uid|gid|mode|schedule|keep|restartContainers|hard|pause|exec|encryption|readData|volume|create|wait|purge|force|usage|all|as|limit|POST|route|takes|ID|parameter|content-type)\b/;

/**
 * A refusal of bad input: 4xx, the message (Docker's `Err` or the API's error.message) is plain, bounded, names
 * what was wrong, and says nothing of ferryd's insides. A success is allowed (the input may have been good).
 */
export function assertBadInputAnswer(a: HttpAnswer, protocol: 'plugin' | 'api', what: string): void {
  const stateRefusal = protocol === 'plugin' && a.status === 500 && PLUGIN_STATE_REFUSAL.test(String(a.json?.Err));
  assert.ok(a.status < 500 || stateRefusal, `${what}: ${a.status} ${a.text.slice(0, 500)}`);
  if (a.status < 400) return;
  const message: unknown = protocol === 'plugin' ? a.json?.Err : a.json?.error?.message;
  assert.equal(typeof message, 'string', `${what}: ${a.status} without a message: ${a.text.slice(0, 500)}`);
  const m = message as string;
  assert.ok(m.length > 0, `${what}: empty message`);
  assert.ok(m.length <= 1024, `${what}: a message of ${m.length} characters: ${m.slice(0, 300)}...`);
  assert.ok(!/\[object Object\]|undefined|is not a function|Cannot read prop|at .*\.js:\d+/.test(m), `${what}: message shows ferryd's insides: ${m}`);
  assert.match(m, FIELD_WORDS, `${what}: the message names nothing the request held: ${m}`);
  if (protocol === 'api') assert.ok(['invalid', 'not_found', 'exists', 'in_use', 'forbidden', 'unauthorized'].includes(a.json?.error?.code), `${what}: error code ${a.json?.error?.code}`);
}

/** Same pid and it still answers. */
export async function assertAlive(sb: Sandbox, pid: number, ping: () => Promise<HttpAnswer>): Promise<void> {
  assert.equal(sb.f.pid, pid, 'ferryd was restarted');
  assert.doesNotThrow(() => process.kill(pid, 0), 'ferryd died');
  assert.equal((await ping()).status, 200, 'ferryd does not answer');
}

/** Run one case: the request, then the per-case invariants (answer, no write outside the sandbox's allowed directories). */
export async function checkCase(sb: Sandbox, strings: string[], send: () => Promise<HttpAnswer>, protocol: 'plugin' | 'api', what: string): Promise<HttpAnswer> {
  const before = traversalTargets(sb, strings);
  let a: HttpAnswer;
  try {
    a = await send();
  } catch (err) {
    let alive = true;
    try {
      process.kill(sb.f.pid, 0);
    } catch {
      alive = false;
    }
    const tail = (await readFile(`${sb.f.dir}/ferryd.log`, 'utf8')).split('\n').slice(-6).map((l) => l.slice(0, 400)).join('\n');
    throw new Error(`${what}: ${(err as Error).message}; ferryd ${alive ? 'is running' : 'is dead'}; its log ends:\n${tail}`);
  }
  assertBadInputAnswer(a, protocol, what);
  const created = newlyCreated(before);
  assert.deepEqual(created, [], `${what}: created outside the data dir and pools: ${created.join(', ')}`);
  return a;
}

/** The batch invariants: the sandbox outside the allowed dirs is as it was, catalog and disk agree, no error in the log. */
export async function checkBatch(sb: Sandbox, tree: string[], logOffset: number): Promise<void> {
  assert.deepEqual(await outsideTree(sb), tree, 'something changed in the sandbox outside the data dir and pools');
  assert.deepEqual(await catalogProblems(sb), [], 'catalog and disk disagree');
  const log = (await readFile(`${sb.f.dir}/ferryd.log`, 'utf8')).slice(logOffset);
  // A background job refusing its input is logged as a failed job (left open: backup restore checks its URL
  // only once the job runs, see docs/testing.md); anything else at error level is an internal failure.
  const errors = log.split('\n').filter((l) => /"level":(50|60)/.test(l) && !/"msg":"job failed"/.test(l));
  assert.deepEqual(errors.slice(0, 5), [], 'ferryd logged errors (internal failures) for bad input');
}

const overLimit = (payload: Buffer) => payload.length > 1024 * 1024;

/**
 * One raw HTTP/1.1 request over a unix socket, bytes as given. A server may close a connection whose body it
 * refused before reading it; when such a close loses the 413 (0 bytes read, seen once in a loaded full run), the
 * request is sent once more, and a second silent close fails the case.
 */
export async function rawRequest(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  try {
    return await rawRequestOnce(socketPath, method, path, payload, headers);
  } catch (err) {
    if (!(payload && overLimit(payload) && /\(0 bytes\)/.test(String(err)))) throw err;
    return rawRequestOnce(socketPath, method, path, payload, headers);
  }
}

/**
 * One HTTP/1.1 request written by hand on a unix socket, as a keep-alive client (Docker's) sends it: the
 * answer is read as soon as it is complete, even when the server answers early (413, 405) before the body is
 * written, and whatever the bytes of the request (invalid UTF-8, duplicate keys, no content type).
 */
function rawRequestOnce(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolvePromise, reject) => {
    const sock = connect(socketPath);
    let all = Buffer.alloc(0);
    let done = false;
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const head = [`${method} ${path} HTTP/1.1`, 'host: localhost', ...(body !== undefined ? [`content-length: ${payload.length}`] : []), ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    const finish = (answer: HttpAnswer) => {
      done = true;
      sock.destroy();
      resolvePromise(answer);
    };
    const tryParse = (final: boolean) => {
      const split = all.indexOf('\r\n\r\n');
      if (split < 0) return final ? reject(new Error(`no HTTP answer to ${method} ${path.slice(0, 100)} (${all.length} bytes)`)) : undefined;
      const lines = all.subarray(0, split).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1] ?? 0);
      const hdrs: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let rest: Buffer = all.subarray(split + 4);
      if (/chunked/i.test(hdrs['transfer-encoding'] ?? '')) {
        if (!final && rest.indexOf('\r\n0\r\n\r\n') < 0 && !rest.subarray(0, 5).equals(Buffer.from('0\r\n\r\n'))) return undefined;
        rest = unchunk(rest);
      } else if (hdrs['content-length'] !== undefined) {
        const n = Number(hdrs['content-length']);
        if (rest.length < n) return final ? reject(new Error(`answer to ${method} ${path.slice(0, 100)} cut short`)) : undefined;
        rest = rest.subarray(0, n);
      } else if (!final) return undefined;
      const text = rest.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return finish({ status, headers: hdrs, text, json });
    };
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET' && !done) reject(err);
    });
    sock.on('data', (c: Buffer) => {
      all = Buffer.concat([all, c]);
      if (!done) tryParse(false);
    });
    sock.on('close', () => (done ? undefined : tryParse(true)));
    // A body above the servers' limits (1 MiB) is refused on its content-length alone: only its first 4 KiB are
    // sent, in one write the socket buffer takes at once, as node's client loses an answer that comes while it is
    // still writing (EPIPE destroys the socket).
    sock.write(Buffer.concat([Buffer.from(head + '\r\n\r\n', 'utf8'), overLimit(payload) ? payload.subarray(0, 4096) : payload]));
  });
}

function unchunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const nl = b.indexOf('\r\n', at);
    if (nl < 0) break;
    const size = parseInt(b.subarray(at, nl).toString('latin1'), 16);
    if (!(size > 0)) break;
    out.push(b.subarray(nl + 2, nl + 2 + size));
    at = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}
