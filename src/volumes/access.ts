/** A volume's access mode (rwx unless its options say otherwise). */
import type { VolumeRecord } from '../catalog/catalog.js';
import type { AccessMode } from '../wire/types.js';

export function accessOf(rec: VolumeRecord): AccessMode {
  return rec.options.access ?? 'rwx';
}
