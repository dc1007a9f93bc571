/** Every volume option ferryd accepts: the core's, sizes, the snapshots' and the backups', in one parser. */
import type { VolumeOptions } from '../wire/types.js';
import { coreOptions, volumeOptionsParser, type OptionParser } from '../volumes/options.js';
import { snapshotOptions } from '../snapshots/options.js';
import { backupOptions } from '../backup/options.js';
import { sizeOptions } from '../volumes/sizes.js';

// Every option of the wire contract has its parser: a key one feature forgets does not compile.
const all = { ...coreOptions.parsers, ...sizeOptions.parsers, ...snapshotOptions.parsers, ...backupOptions.parsers } satisfies Record<keyof VolumeOptions, OptionParser>;
void all;

export const parseVolumeOptions = volumeOptionsParser([coreOptions, sizeOptions, snapshotOptions, backupOptions]);
export const ACCEPTED_OPTIONS = parseVolumeOptions.accepted;
