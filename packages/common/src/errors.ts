/**
 * The closed set of error codes Wrenn uses everywhere. Domain code throws WrennError;
 * only the edges (HTTP, Connect, CLI) map a code to a transport status.
 */
export const ERROR_CODES = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  failed_precondition: 409,
  resource_exhausted: 429,
  unavailable: 503,
  deadline_exceeded: 504,
  bad_gateway: 502,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class WrennError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'WrennError';
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code];
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isWrennError(e: unknown): e is WrennError {
  return e instanceof WrennError;
}

/** Message of any thrown value, for logs and one-line CLI errors. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
