// The backup's file readers: the child-process reader gives the same bytes as the local one, keeps errno codes, and has a deadline.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ChildReader, localReader, type FileReader } from '../../src/backup/file-reader.js';

async function readAll(r: FileReader, path: string, step: number): Promise<Buffer> {
  const fh = await r.open(path);
  const parts: Buffer[] = [];
  try {
    for (let pos = 0; ; ) {
      const buf = Buffer.alloc(step + 7);
      const n = await fh.read(buf, 7, step, pos);
      if (n === 0) break;
      parts.push(buf.subarray(7, 7 + n));
      pos += n;
    }
  } finally {
    await fh.close();
  }
  return Buffer.concat(parts);
}

describe('backup file readers', () => {
  let dir: string;
  const data = randomBytes(3 * 1024 * 1024 + 123);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-reader-'));
    await writeFile(join(dir, 'f'), data);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads the same bytes in a child process as in ferryd, at any offset', async () => {
    const child = new ChildReader({ what: 'test' });
    try {
      assert.ok((await readAll(child, join(dir, 'f'), 1024 * 1024)).equals(data));
      assert.ok((await readAll(localReader, join(dir, 'f'), 1024 * 1024)).equals(data));
      assert.ok((await readAll(child, join(dir, 'f'), 4096 * 3 + 1)).equals(data));
    } finally {
      await child.close();
    }
  });

  it('keeps the errno of a file that vanished', async () => {
    const child = new ChildReader({ what: 'test' });
    try {
      await assert.rejects(child.open(join(dir, 'missing')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    } finally {
      await child.close();
    }
  });

  it('fails a call that does not answer with unavailable, and works again with a fresh child', async () => {
    // opening a FIFO for reading waits for a writer, as a read of a hung share waits for the server
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    const child = new ChildReader({ what: 'backup of v', deadlineMs: 500 });
    try {
      await assert.rejects(child.open(join(dir, 'fifo')), (e: Error & { code?: string }) => e.code === 'unavailable' && /backup of v: open .*fifo on the share did not answer within 0.5 s/.test(e.message));
      assert.ok((await readAll(child, join(dir, 'f'), 1 << 20)).equals(data));
    } finally {
      await child.close();
    }
  });
});
