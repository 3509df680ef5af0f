import { WrennError } from '@wrenn/common';
import type { Core } from '../../core.ts';
import type { SandboxStatus } from '../../db/schema.ts';
import type { RouteRegistry } from '../route.ts';
import {
  CreateSandboxBody,
  ExecBody,
  ExecResult,
  FileQuery,
  IdParams,
  ListSandboxesQuery,
  MetricsQuery,
  MetricsResult,
  ResumeBody,
  Sandbox,
  SandboxList,
  TimeoutBody,
} from '../schemas.ts';

const STATUSES = new Set(Sandbox.shape.status.options);

/** `a=1&b=2` (how the e2b SDK encodes metadata filters) → record. */
function parseMetadataFilter(raw: string | undefined): Record<string, string> | undefined {
  if (!raw) return undefined;
  return Object.fromEntries(new URLSearchParams(raw));
}

function parseStatuses(raw: string | undefined): SandboxStatus[] | undefined {
  if (!raw) return undefined;
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of list) {
    if (!STATUSES.has(s as SandboxStatus))
      throw new WrennError('invalid_argument', `query.status: unknown status '${s}'`);
  }
  return list as SandboxStatus[];
}

export function sandboxRoutes(r: RouteRegistry, core: Core): void {
  const svc = core.sandboxes;
  r.add({
    method: 'POST',
    url: '/v1/sandboxes',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Create a sandbox from a template',
    body: CreateSandboxBody,
    response: { status: 201, schema: Sandbox },
    handler: ({ caller, body }) => svc.create(caller, body),
  });
  r.add({
    method: 'GET',
    url: '/v1/sandboxes',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'List sandboxes, newest first, filtered by metadata and status, paged by nextToken',
    query: ListSandboxesQuery,
    response: { status: 200, schema: SandboxList },
    handler: ({ caller, query }) =>
      svc.list(caller, {
        metadata: parseMetadataFilter(query.metadata),
        statuses: parseStatuses(query.status),
        limit: query.limit,
        nextToken: query.nextToken,
      }),
  });
  r.add({
    method: 'GET',
    url: '/v1/sandboxes/:id',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Get a sandbox',
    params: IdParams,
    response: { status: 200, schema: Sandbox },
    handler: ({ caller, params }) => svc.get(caller, params.id),
  });
  r.add({
    method: 'DELETE',
    url: '/v1/sandboxes/:id',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Kill a sandbox (its VM and data are destroyed)',
    params: IdParams,
    response: { status: 204 },
    handler: ({ caller, params }) => svc.kill(caller, params.id),
  });
  r.add({
    method: 'POST',
    url: '/v1/sandboxes/:id/pause',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Pause a running sandbox to disk (409 if already paused)',
    params: IdParams,
    response: { status: 200, schema: Sandbox },
    handler: ({ caller, params }) => svc.pause(caller, params.id),
  });
  r.add({
    method: 'POST',
    url: '/v1/sandboxes/:id/resume',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Resume a paused sandbox on the host holding its snapshot (409 if running)',
    params: IdParams,
    body: ResumeBody,
    response: { status: 200, schema: Sandbox },
    handler: ({ caller, params, body }) => svc.resume(caller, params.id, body),
  });
  r.add({
    method: 'POST',
    url: '/v1/sandboxes/:id/timeout',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Set the timeout, counted from now (0 = none)',
    params: IdParams,
    body: TimeoutBody,
    response: { status: 200, schema: Sandbox },
    handler: ({ caller, params, body }) => svc.setTimeout(caller, params.id, body.timeoutSeconds),
  });
  r.add({
    method: 'POST',
    url: '/v1/sandboxes/:id/exec',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'Run a command to completion; output as UTF-8, or base64 when binary',
    params: IdParams,
    body: ExecBody,
    response: { status: 200, schema: ExecResult },
    handler: ({ caller, params, body }) => svc.exec(caller, params.id, body),
  });
  r.add({
    method: 'GET',
    url: '/v1/sandboxes/:id/files',
    tag: 'files',
    auth: 'key',
    summary: "Read a file's bytes",
    params: IdParams,
    query: FileQuery,
    response: { status: 200, contentType: 'application/octet-stream', description: 'File content' },
    handler: async ({ caller, params, query, reply }) => {
      const res = await svc.readFile(caller, params.id, query.path, query.user);
      reply.header('content-type', 'application/octet-stream');
      const len = res.headers.get('content-length');
      if (len) reply.header('content-length', len);
      return reply.send(Buffer.from(await res.arrayBuffer()));
    },
  });
  r.add({
    method: 'PUT',
    url: '/v1/sandboxes/:id/files',
    tag: 'files',
    auth: 'key',
    summary: 'Write a file (raw request body), creating parent directories',
    params: IdParams,
    query: FileQuery,
    rawBody: true,
    response: { status: 204 },
    handler: async ({ caller, params, query, body }) => {
      const data = Buffer.isBuffer(body)
        ? body
        : typeof body === 'string'
          ? Buffer.from(body)
          : Buffer.alloc(0);
      await svc.writeFile(caller, params.id, query.path, data, query.user);
    },
  });
  r.add({
    method: 'GET',
    url: '/v1/sandboxes/:id/metrics',
    tag: 'sandboxes',
    auth: 'key',
    summary: 'CPU, memory and disk samples',
    params: IdParams,
    query: MetricsQuery,
    response: { status: 200, schema: MetricsResult },
    handler: async ({ caller, params, query }) => ({
      points: await svc.metrics(caller, params.id, query.since),
    }),
  });
}
