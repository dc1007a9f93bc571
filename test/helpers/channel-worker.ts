// A tiny worker for the worker channel's unit test: echoes, fails with codes, reports progress, answers out of order, exits.
import { isMainThread } from 'node:worker_threads';
import { serveRequests } from '../../src/util/worker-channel.js';
import { FerryError } from '../../src/util/errors.js';

export type TestRequest =
  | { op: 'echo'; v: unknown }
  | { op: 'fail'; coded: boolean }
  | { op: 'count'; n: number }
  | { op: 'hold'; key: string }
  | { op: 'release'; key: string; v: unknown }
  | { op: 'exit'; code: number };

if (!isMainThread) {
  const held = new Map<string, (v: unknown) => void>();
  serveRequests<TestRequest, unknown, number>((r, ctx) => {
    switch (r.op) {
      case 'echo':
        return r.v;
      case 'fail':
        if (r.coded) throw new FerryError('corrupt', 'pack p1 is damaged', { pack: 'p1' });
        throw new Error('plain failure');
      case 'count':
        for (let i = 1; i <= r.n; i++) ctx.progress(i);
        return r.n;
      case 'hold':
        return new Promise((resolve) => held.set(r.key, resolve));
      case 'release':
        held.get(r.key)!(r.v);
        return 'released';
      case 'exit':
        process.exit(r.code);
    }
  });
}
