// Writing into a file until its filesystem refuses: where a size limit or a full image stops a writer.
import { randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';

/** Append random 64 KiB chunks to `file` (synced every 4 MiB) until the filesystem refuses; the bytes written and the error code. */
export async function fillUntilRefused(file: string, mostMiB = 1024): Promise<{ written: number; code: string | undefined }> {
  const fh = await open(file, 'a');
  let code: string | undefined;
  const chunk = randomBytes(64 * 1024);
  try {
    for (let i = 0; i < mostMiB * 16; i++) {
      await fh.write(chunk);
      if (i % 64 === 63) await fh.sync();
    }
    await fh.sync();
  } catch (err) {
    // Node 20 has no name for EDQUOT (122): "Unknown system error -122"
    const e = err as NodeJS.ErrnoException;
    code = e.errno === -122 ? 'EDQUOT' : e.code;
  } finally {
    await fh.close().catch(() => undefined);
  }
  return { written: (await stat(file)).size, code };
}
