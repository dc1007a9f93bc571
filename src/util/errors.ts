/**
 * One error type for everything a user can get wrong or the system can refuse.
 * `code` is stable (scripts and the API rely on it), `message` says what was wrong and what to do.
 */
export type ErrorCode =
  | 'invalid' // bad input: name, option, body
  | 'not_found'
  | 'exists'
  | 'in_use'
  | 'unavailable' // a backend or dependency is down
  | 'bad_password' // a backup repository refused the password or key file
  | 'no_space' // a target is full (ENOSPC, quota)
  | 'corrupt' // stored data failed its checks (hash, authentication tag, format)
  | 'internal';

const httpStatus: Record<ErrorCode, number> = {
  invalid: 400,
  not_found: 404,
  exists: 409,
  in_use: 409,
  unavailable: 503,
  bad_password: 401,
  no_space: 507,
  corrupt: 500,
  internal: 500,
};

export class FerryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'FerryError';
  }

  get status(): number {
    return httpStatus[this.code];
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
