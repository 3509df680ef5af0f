import { Code, ConnectError } from '@connectrpc/connect';
import { type ErrorCode, errorMessage, isWrennError } from './errors.ts';

/**
 * The one mapping from WrennError codes to Connect codes, for every Connect server (the
 * agent's RPC API, envd's process and filesystem services). Imported by path, so modules
 * that never speak Connect do not load it.
 */
const CONNECT_CODES: Record<ErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  conflict: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  bad_gateway: Code.Unavailable,
  internal: Code.Internal,
};

/**
 * Never a stack trace: a WrennError keeps its code and message; anything else is Internal
 * with its message only.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (isWrennError(e))
    return new ConnectError(e.message, CONNECT_CODES[e.code], undefined, undefined, e);
  return new ConnectError(errorMessage(e), Code.Internal);
}
