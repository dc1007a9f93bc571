// Names of the staging directories where shared-pool creates make a volume out of sight, and whose they are.
import { randomBytes } from 'node:crypto';

/** A staging id for one create of the ferryd `instance`: INSTANCE.RANDOM (hex, so never a volume name clash). */
export function stagingId(instance: string): string {
  return `${instance}.${randomBytes(6).toString('hex')}`;
}

/** The ferryd instance that made a staging directory ('' for a name not made by stagingId). */
export function stagingOwner(id: string): string {
  const dot = id.indexOf('.');
  return dot > 0 ? id.slice(0, dot) : '';
}
