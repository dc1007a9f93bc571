// The child process that opens and reads a share's files for a backup, so that ferryd never holds one open.
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Started by file-reader.ts with an IPC channel (advanced serialization: buffers cross as bytes).
 * Each message is one call `{ id, op, args }`: `open [path]` → a handle number, `read [h, len, pos]`
 * → the bytes read (empty at the end), `close [h]`. The answer is `{ id, value }` or
 * `{ id, error: { code, message } }`.
 */
const files = new Map<number, FileHandle>();
let next = 1;

async function run(op: string, args: unknown[]): Promise<unknown> {
  switch (op) {
    case 'open': {
      const fh = await open(args[0] as string, 'r');
      files.set(next, fh);
      return next++;
    }
    case 'read': {
      const fh = files.get(args[0] as number);
      if (!fh) throw new Error(`no open file ${String(args[0])}`);
      const buf = Buffer.allocUnsafe(args[1] as number);
      const { bytesRead } = await fh.read(buf, 0, buf.length, args[2] as number);
      return buf.subarray(0, bytesRead);
    }
    case 'close': {
      const fh = files.get(args[0] as number);
      files.delete(args[0] as number);
      await fh?.close();
      return null;
    }
    default:
      throw new Error(`unknown call ${op}`);
  }
}

process.on('message', (m: { id: number; op: string; args: unknown[] }) => {
  run(m.op, m.args).then(
    (value) => process.send?.({ id: m.id, value }),
    (err: NodeJS.ErrnoException) => process.send?.({ id: m.id, error: { code: err.code, message: err.message } }),
  );
});
process.on('disconnect', () => process.exit(0));
