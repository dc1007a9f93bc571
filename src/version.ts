/** Ferry's version, from package.json. */
import { readFileSync } from 'node:fs';
import { builtUrl } from './util/built-files.js';

/** The version in package.json (dist/src/version.js sits two levels below the package root). */
export const VERSION: string = (JSON.parse(readFileSync(builtUrl('../../package.json'), 'utf8')) as { version: string }).version;
