// An S3 endpoint that accepts connections and never answers: a request fails, naming the endpoint, instead of waiting forever.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { S3Target } from '../../src/backup/s3-target.js';
import { FerryError } from '../../src/util/errors.js';

describe('S3 target against a hung endpoint', () => {
  const sockets = new Set<Socket>();
  // a stopped server, as a SIGSTOPped one looks from outside: the kernel accepts, nothing ever answers
  const server = createServer((s) => (sockets.add(s), s.on('close', () => sockets.delete(s)), s.on('error', () => undefined)));
  after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });

  it('fails unavailable after the idle timeout, for each try', { timeout: 60_000 }, async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const t = new S3Target('bucket', 'repo', { endpoint: `http://127.0.0.1:${port}`, pathStyle: true, accessKeyId: 'k', secretAccessKey: 's', idleTimeoutMs: 300 });
    await assert.rejects(t.get('config'), (err: unknown) => {
      assert.ok(err instanceof FerryError, String(err));
      assert.equal(err.code, 'unavailable');
      assert.match(err.message, new RegExp(`S3 endpoint http://127\\.0\\.0\\.1:${port} is unreachable or failing \\(TimeoutError: .*\\) while reading config`));
      return true;
    });
  });
});
