import type { ServerResponse } from 'node:http';
import { errorMessage, isWrennError, WrennError } from '@wrenn/common/errors.ts';
import { fromErrno, httpStatusOf } from '../errors.ts';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
  });
  res.end(data);
}

/** The one way plain-HTTP errors leave envd: `{code, message}`, the right status, no stack. */
export function sendError(res: ServerResponse, e: unknown): void {
  const w = isWrennError(e)
    ? e
    : e instanceof Error && 'code' in e
      ? fromErrno(e, 'request')
      : new WrennError('internal', errorMessage(e));
  if (res.headersSent) {
    res.destroy(w); // mid-body: the only honest signal left is a broken stream
    return;
  }
  sendJson(res, httpStatusOf(w), w.toJSON());
}
