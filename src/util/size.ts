/** Sizes as people write them (`10G`, `512M`, `1.5T`, plain bytes): parsed to bytes, binary like Docker (10G = 10 GiB). */
import { FerryError } from './errors.js';
import { shown } from './shown.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** The smallest size limit accepted: a btrfs qgroup counts metadata too, and a volume must hold at least its root. */
export const MIN_SIZE = 2 ** 20;

/**
 * Bytes from `10G`, `10GiB`, `10g`, `512M`, `1.5T` or `1073741824` (K, M, G, T are powers of 1024, as
 * Docker's `size=` of tmpfs and its `--memory`). Refuses anything else with a message that says what is accepted.
 */
export function parseSize(value: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kKmMgGtT])(?:i?[bB])?|[bB])?$/.exec(value.trim());
  if (!m) throw new FerryError('invalid', `${what}=${shown(value)}: expected a size such as 10G, 512M, 1.5T or a number of bytes (K, M, G, T: powers of 1024)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toUpperCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new FerryError('invalid', `${what}=${shown(value)}: too large (at most 8 PiB)`);
  if (bytes < MIN_SIZE) throw new FerryError('invalid', `${what}=${shown(value)}: too small: at least 1M (a volume's own metadata counts against its limit)`);
  return bytes;
}

/** "10 GiB", "1.5 MiB", "1000 B": a size for messages (exact where it is a whole number of the unit). */
export function sizeText(bytes: number): string {
  for (const u of ['T', 'G', 'M', 'K'] as const) {
    const n = bytes / UNITS[u]!;
    if (n >= 1) return `${Number.isInteger(n) ? n : n.toFixed(1)} ${u}iB`;
  }
  return `${bytes} B`;
}
