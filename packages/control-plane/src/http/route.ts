import { WrennError } from '@wrenn/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod/v4';
import type { Caller } from '../services/keys.ts';
import { describeIssues } from './errors.ts';

/** How a route authenticates: a team API key, a host token, or nothing (register, health). */
export type RouteAuth = 'key' | 'host' | 'none';

export interface RouteContext<P, Q, B> {
  /** Set for `auth: 'key'` routes. */
  caller: Caller;
  params: P;
  query: Q;
  body: B;
  req: FastifyRequest;
  reply: FastifyReply;
}

export interface RouteSpec<P = unknown, Q = unknown, B = unknown> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Fastify syntax (`/v1/sandboxes/:id`); OpenAPI gets `{id}`. */
  url: string;
  summary: string;
  tag: string;
  auth: RouteAuth;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Raw request body (file upload) instead of JSON. */
  rawBody?: boolean;
  response: { status: number; schema?: z.ZodType; contentType?: string; description?: string };
  handler(ctx: RouteContext<P, Q, B>): Promise<unknown>;
}

/** Routes register here and in Fastify at once, so `/openapi.json` lists exactly what is served. */
export class RouteRegistry {
  readonly specs: RouteSpec<any, any, any>[] = [];

  constructor(private readonly app: FastifyInstance) {}

  add<P, Q, B>(spec: RouteSpec<P, Q, B>): void {
    this.specs.push(spec);
    this.app.route({
      method: spec.method,
      url: spec.url,
      config: { auth: spec.auth },
      handler: async (req, reply) => {
        const params = parse('path', spec.params, req.params);
        const query = parse('query', spec.query, req.query);
        const body = spec.rawBody
          ? req.body
          : parse('body', spec.body, req.body ?? (spec.body ? {} : undefined));
        const caller = (req as FastifyRequest & { caller?: Caller }).caller as Caller;
        const result = await spec.handler({
          caller,
          params,
          query,
          body,
          req,
          reply,
        } as RouteContext<P, Q, B>);
        if (reply.sent) return reply;
        reply.code(spec.response.status);
        if (result === undefined) return reply.send();
        return result;
      },
    });
  }
}

function parse<T>(where: string, schema: z.ZodType<T> | undefined, value: unknown): T {
  if (!schema) return value as T;
  const r = schema.safeParse(value);
  if (!r.success) throw new WrennError('invalid_argument', describeIssues(where, r.error.issues));
  return r.data;
}
