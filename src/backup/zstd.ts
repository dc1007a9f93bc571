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
let cctx: ZstdBinding.CCtx | undefined;
let dctx: ZstdBinding.DCtx | undefined;

/** The native module, loaded on first use so that a ferryd that never backs up never loads it. */
function zstd(): typeof ZstdBinding {
  if (binding) return binding;
  try {
    binding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding;
  } catch (err) {
    throw new FerryError(
      'internal',
      `cannot load zstd (the native module of the zstd-napi package): ${(err as Error).message}. ` +
        'Run npm ci again; without a prebuilt binary it is compiled, which needs g++, make and python3.',
    );
  }
  return binding;
}

/**
 * `plain` compressed into a new buffer, after `headroom` bytes left for the caller (the format byte):
 * the result is returned whole, headroom included, so it need not be copied into a frame.
 */
export function zstdCompress(plain: Uint8Array, headroom = 0): Buffer {
  const z = zstd();
  cctx ??= new z.CCtx();
  const out = Buffer.allocUnsafe(headroom + z.compressBound(plain.length));
  const n = cctx.compress(out.subarray(headroom), plain, ZSTD_LEVEL);
  return out.subarray(0, headroom + n);
}

/**
 * A zstd frame decompressed. With `size` (a chunk's known length) the output buffer has exactly that
 * size and a frame that holds more fails; without it, the size the frame declares is used, up to 1 GiB.
 * Throws on damage; the caller names the object.
 */
export function zstdDecompress(body: Uint8Array, size?: number): Buffer {
  const z = zstd();
  const n = size ?? z.getFrameContentSize(body);
  if (n === null || n > MAX_UNKNOWN_SIZE) throw new Error(n === null ? 'zstd frame without a content size' : `zstd frame claims ${n} bytes`);
  dctx ??= new z.DCtx();
  const out = Buffer.allocUnsafe(n);
  const got = dctx.decompress(out, body);
  return got === n ? out : out.subarray(0, got);
}
