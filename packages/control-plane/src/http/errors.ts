import { WrennError } from '@wrenn/common';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod/v4';

/** Readable one-line summary of zod issues: `body.vcpus: expected int, received string`. */
export function describeIssues(where: string, issues: z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => {
      const path = [where, ...i.path.map(String)].join('.');
      return `${path}: ${i.message}`;
    })
    .join('; ');
}

export function fromFastifyError(e: FastifyError): WrennError {
  // Body parsing and framework errors: malformed JSON, wrong content type, oversized body.
  const status = e.statusCode ?? 500;
  if (
    e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
    e instanceof SyntaxError ||
    e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
  ) {
    return new WrennError('invalid_argument', `malformed JSON body: ${e.message}`);
  }
  if (status === 413) return new WrennError('invalid_argument', 'request body too large');
  if (status === 415)
    return new WrennError('invalid_argument', `unsupported content type: ${e.message}`);
  if (status >= 400 && status < 500) return new WrennError('invalid_argument', e.message);
  return new WrennError('internal', 'internal error');
}

/** Every error leaves as `{code, message}` with the code's status; never a stack trace. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const err = error instanceof WrennError ? error : fromFastifyError(error as FastifyError);
    if (err.code === 'internal') request.log.error({ err: error }, 'unhandled error');
    // Some transport statuses differ from the code's default (413, 415): keep the more precise one.
    const raw = (error as FastifyError).statusCode;
    const status =
      !(error instanceof WrennError) && raw && raw >= 400 && raw < 500 ? raw : err.httpStatus;
    reply.code(status).type('application/json').send(err.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({
      code: 'not_found',
      message: `no route ${request.method} ${request.url.split('?')[0]}`,
    });
  });
}
