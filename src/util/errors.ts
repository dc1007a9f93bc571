/**
 * One error type for everything a user can get wrong or the system can refuse.
 * `code` is stable (scripts and the API rely on it), `message` says what was wrong and what to do.
 */
import type { ErrorCode } from '../wire/types.js';

// The codes are the wire contract's (src/wire/types.ts): the API, the CLI and the web UI share them.
export type { ErrorCode };

const httpStatus: Record<ErrorCode, number> = {
  invalid: 400,
  not_found: 404,
  exists: 409,
  in_use: 409,
  unavailable: 503,
  // not 401: that is the API's own authentication (a token); this is a backup repository refusing its secret
  bad_password: 424,
  no_space: 507,
  corrupt: 500,
  internal: 500,
  unauthorized: 401,
  forbidden: 403,
};

export class FerryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    // A refusal is answered, not debugged: no stack is captured for it (16 µs each, and Docker's Get of a
    // volume not made yet, before every create, is one). An internal error keeps its stack.
    const limit = Error.stackTraceLimit;
    if (code !== 'internal') Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'FerryError';
  }

  get status(): number {
    return httpStatus[this.code];
  }
}

/** Linux's EDQUOT: Node 20 (its libuv) has no name for it and says "UNKNOWN: unknown error" or "Unknown system error -122". */
const EDQUOT_ERRNO = -122;

export function errorMessage(err: unknown): string {
  if (err instanceof Error && (err as NodeJS.ErrnoException).errno === EDQUOT_ERRNO && !/Disk quota exceeded/.test(err.message)) {
    // a size limit (-o size=, a btrfs qgroup) was met: say so, also where only the message crosses (worker threads)
    return `Disk quota exceeded (EDQUOT): ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** A mistake in what was typed on the command line (a flag's value, a name): the CLI exits 2 for it, as for an unknown flag. */
export function usageError(message: string): FerryError {
  return new FerryError('invalid', message, { usage: true });
}

/** Whether `err` is a usageError(). */
export function isUsageError(err: unknown): boolean {
  return err instanceof FerryError && err.details?.usage === true;
}
