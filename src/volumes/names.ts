/** Volume names: Docker's rule plus a length limit. */
import { FerryError } from '../util/errors.js';

/** Docker's rule for volume names, plus a length limit so that every derived file name stays valid. */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
export const NAME_MAX = 128;

/** Throw a clear error unless `name` is a valid volume name. Every entry point calls this first. */
export function checkVolumeName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new FerryError('invalid', 'volume name is missing; give a name such as "db-data"');
  }
  if (name.length > NAME_MAX) {
    throw new FerryError('invalid', `volume name is ${name.length} characters long; the limit is ${NAME_MAX}`);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new FerryError(
      'invalid',
      `invalid volume name ${JSON.stringify(name)}: use at least 2 characters of [a-zA-Z0-9_.-], starting with a letter or digit (no "/" and no leading ".")`,
    );
  }
  return name;
}
