/**
 * zstd for stored objects (zstd-napi, native): one compression and one decompression context per
 * thread, made on first use and reused, and output written straight into buffers of known size.
 */
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { FerryError } from '../util/errors.js';

/** restic's default ("auto") is zstd's default level, 3; measured in docs/backup-format.md, "Compression". */
export const ZSTD_LEVEL = 3;
/** What an object of unknown size may claim to decompress to (a larger claim is damage, not data). */
const MAX_UNKNOWN_SIZE = 1 << 30;

let binding: typeof ZstdBinding | undefined;
let loadError: string | undefined;
let cctx: ZstdBinding.CCtx | undefined;
let dctx: ZstdBinding.DCtx | undefined;
/**
 * This thread's output buffers, grown to the largest object seen and reused: a new buffer per chunk was
 * fresh memory the kernel had to fault in page by page (a restore of 1 GiB took ~320,000 minor faults
 * and twice restic's system time on a VM; see bench/README.md, backup.ts).
 */
let compressed: Buffer = Buffer.alloc(0);
let decompressed: Buffer = Buffer.alloc(0);

function scratch(buf: Buffer, size: number): Buffer {
  return buf.length >= size ? buf : Buffer.allocUnsafeSlow(Math.max(size, Math.min(2 * buf.length, 16 << 20)));
}

/**
 * The native module, loaded on first use so that a ferryd that never backs up never loads it. zstd-napi
 * is an optional dependency: where npm could neither download nor compile it, Ferry still installs and
 * writes brotli (zstdAvailable() is false), and only reading a zstd object fails, saying why.
 */
function zstd(): typeof ZstdBinding {
  if (binding) return binding;
  if (loadError === undefined) {
    try {
      binding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding;
      return binding;
    } catch (err) {
      loadError = (err as Error).message.split('\n')[0]!;
    }
  }
  throw new FerryError(
    'unavailable',
    `zstd is not available on this host (the optional package zstd-napi did not install or load: ${loadError}). ` +
      'Backups made here use brotli instead. To read backups compressed with zstd, install g++, make and python3 ' +
      "(offline, also point npm at Node's headers: npm config set nodedir /usr) and run npm ci again.",
  );
}

/** Whether this host can compress with zstd (see zstd()). */
export function zstdAvailable(): boolean {
  try {
    zstd();
    return true;
  } catch {
    return false;
  }
}

/**
 * `plain` compressed, after `headroom` bytes left for the caller (the format byte): the result is returned
 * whole, headroom included, so it need not be copied into a frame. It is a view of this thread's output
 * buffer, valid until the next call on this thread: the caller copies what it keeps (seals it).
 */
export function zstdCompress(plain: Uint8Array, headroom = 0): Buffer {
  const z = zstd();
  cctx ??= new z.CCtx();
  compressed = scratch(compressed, headroom + z.compressBound(plain.length));
  const n = cctx.compress(compressed.subarray(headroom), plain, ZSTD_LEVEL);
  return compressed.subarray(0, headroom + n);
}

/**
 * A zstd frame decompressed. With `size` (a chunk's known length) the output holds exactly that many
 * bytes and a frame that holds more fails; without it, the size the frame declares is used, up to 1 GiB.
 * With `reuse` the result is a view of this thread's output buffer, valid until the next such call on
 * this thread (a restore's writer, which writes each chunk before it opens the next); otherwise a buffer
 * of its own. Throws on damage; the caller names the object.
 */
export function zstdDecompress(body: Uint8Array, size?: number, reuse = false): Buffer {
  const z = zstd();
  const n = size ?? z.getFrameContentSize(body);
  if (n === null || n > MAX_UNKNOWN_SIZE) throw new Error(n === null ? 'zstd frame without a content size' : `zstd frame claims ${n} bytes`);
  dctx ??= new z.DCtx();
  let out: Buffer;
  if (reuse) {
    decompressed = scratch(decompressed, n);
    out = decompressed.subarray(0, n);
  } else out = Buffer.allocUnsafe(n);
  const got = dctx.decompress(out, body);
  return got === n ? out : out.subarray(0, got);
}
