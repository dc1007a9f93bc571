/** The names of the volume options (W.VolumeOptions), for those that only show them: the CLI's help loads no parser. */
import type { VolumeOptions } from './types.js';

/** Every key of W.VolumeOptions, sorted; ferryd's parser (daemon/volume-options.ts) has one parser for each. */
export const VOLUME_OPTION_NAMES = [
  'access',
  'backup',
  'backup-keep',
  'backup-keep-base',
  'backup-schedule',
  'backup-target',
  'from',
  'fs',
  'gid',
  'mode',
  'pool',
  'size',
  'snapshot-keep',
  'snapshot-schedule',
  'uid',
] as const satisfies ReadonlyArray<keyof VolumeOptions>;

// a key added to W.VolumeOptions and not here does not compile
type Unnamed = Exclude<keyof VolumeOptions, (typeof VOLUME_OPTION_NAMES)[number]>;
const everyOptionNamed: [Unnamed] extends [never] ? true : Unnamed = true;
void everyOptionNamed;
