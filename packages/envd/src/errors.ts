import { ConnectError } from '@connectrpc/connect';
import { toConnectError as sharedToConnectError } from '@wrenn/common/connect-errors.ts';
import { errorMessage, isWrennError, WrennError } from '@wrenn/common/errors.ts';

// Domain code throws WrennError; these two functions are the only places a code becomes a
// transport status (Connect code for RPC, HTTP status + JSON body for plain routes).

/** Errno of a failed fs/spawn call → WrennError with a message naming the path. */
export function fromErrno(e: unknown, what: string): WrennError {
  if (isWrennError(e)) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new WrennError('not_found', `${what}: no such file or directory`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new WrennError('permission_denied', `${what}: permission denied`, { cause: e });
    case 'EEXIST':
      return new WrennError('conflict', `${what}: already exists`, { cause: e });
    case 'ENOTDIR':
      return new WrennError('invalid_argument', `${what}: not a directory`, { cause: e });
    case 'EISDIR':
      return new WrennError('invalid_argument', `${what}: is a directory`, { cause: e });
    case 'ENOTEMPTY':
      return new WrennError('failed_precondition', `${what}: directory not empty`, { cause: e });
    case 'ENOSPC':
      return new WrennError('resource_exhausted', `${what}: no space left on device`, { cause: e });
    default:
      return new WrennError('internal', `${what}: ${errorMessage(e)}`, { cause: e });
  }
}

export function toConnectError(e: unknown): ConnectError {
  // Errno failures (fs, spawn) get their WrennError code first; then the shared mapping.
  return e instanceof ConnectError
    ? e
    : sharedToConnectError(isWrennError(e) ? e : fromErrno(e, 'envd'));
}

/** HTTP status the SDK maps to the right error class (507 = not enough space). */
export function httpStatusOf(e: WrennError): number {
  return e.code === 'resource_exhausted' && /space/.test(e.message) ? 507 : e.httpStatus;
}
