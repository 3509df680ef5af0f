import { z } from 'zod/v4';
import type { Core } from '../../core.ts';
import type { RouteRegistry } from '../route.ts';
import {
  ApiKey,
  AuditEntry,
  AuditQuery,
  CreateKeyBody,
  HeartbeatBody,
  Host,
  Id,
  IdParams,
  RegisterBody,
  SnapshotBody,
  Template,
} from '../schemas.ts';

const HOST_TOKEN = 'x-wrenn-host-token';

export function templateRoutes(r: RouteRegistry, core: Core): void {
  r.add({
    method: 'GET',
    url: '/v1/templates',
    tag: 'templates',
    auth: 'key',
    summary: "List the team's templates and the public built-ins",
    response: { status: 200, schema: z.object({ templates: z.array(Template) }) },
    handler: async ({ caller }) => ({ templates: await core.templates.list(caller) }),
  });
  r.add({
    method: 'GET',
    url: '/v1/templates/:id',
    tag: 'templates',
    auth: 'key',
    summary: 'Get a template',
    params: IdParams,
    response: { status: 200, schema: Template },
    handler: ({ caller, params }) => core.templates.get(caller, params.id),
  });
  r.add({
    method: 'POST',
    url: '/v1/templates',
    tag: 'templates',
    auth: 'key',
    summary: 'Snapshot a running sandbox into a new template (the sandbox keeps running)',
    body: SnapshotBody,
    response: { status: 201, schema: Template },
    handler: ({ caller, body }) => core.sandboxes.snapshot(caller, body.sandboxId, body.templateId),
  });
  r.add({
    method: 'DELETE',
    url: '/v1/templates/:id',
    tag: 'templates',
    auth: 'key',
    summary: "Delete one of the team's templates",
    params: IdParams,
    response: { status: 204 },
    handler: ({ caller, params }) => core.templates.delete(caller, params.id),
  });
}

export function hostRoutes(r: RouteRegistry, core: Core): void {
  r.add({
    method: 'POST',
    url: '/v1/hosts/tokens',
    tag: 'hosts',
    auth: 'key',
    summary: 'Create a one-time registration token for a new host agent (admin)',
    response: { status: 201, schema: z.object({ token: z.string(), expiresAt: z.string() }) },
    handler: ({ caller }) => core.hosts.createRegistrationToken(caller),
  });
  r.add({
    method: 'GET',
    url: '/v1/hosts',
    tag: 'hosts',
    auth: 'key',
    summary: 'List hosts with capacity, load and status (admin)',
    response: { status: 200, schema: z.object({ hosts: z.array(Host) }) },
    handler: async ({ caller }) => ({ hosts: await core.hosts.list(caller) }),
  });
  r.add({
    method: 'GET',
    url: '/v1/hosts/:id',
    tag: 'hosts',
    auth: 'key',
    summary: 'Get a host (admin)',
    params: IdParams,
    response: { status: 200, schema: Host },
    handler: ({ caller, params }) => core.hosts.get(caller, params.id),
  });
  r.add({
    method: 'DELETE',
    url: '/v1/hosts/:id',
    tag: 'hosts',
    auth: 'key',
    summary: 'Remove a host that holds no sandboxes (admin)',
    params: IdParams,
    response: { status: 204 },
    handler: ({ caller, params }) => core.hosts.delete(caller, params.id),
  });
  r.add({
    method: 'POST',
    url: '/v1/hosts/register',
    tag: 'hosts',
    auth: 'none',
    summary: 'Agent registration with a one-time token; returns the host token',
    body: RegisterBody,
    response: { status: 201, schema: z.object({ hostId: z.string(), hostToken: z.string() }) },
    handler: ({ body }) => core.hosts.register(body),
  });
  r.add({
    method: 'POST',
    url: '/v1/hosts/:id/heartbeat',
    tag: 'hosts',
    auth: 'host',
    summary: 'Agent heartbeat: capacity and load (X-Wrenn-Host-Token)',
    params: z.object({ id: Id }),
    body: HeartbeatBody,
    response: { status: 200, schema: z.object({ ok: z.boolean() }) },
    handler: async ({ params, body, req }) => {
      const host = await core.hosts.authenticateHost(
        params.id,
        req.headers[HOST_TOKEN] as string | undefined,
      );
      await core.hosts.heartbeat(host, body);
      return { ok: true };
    },
  });
}

export function keyRoutes(r: RouteRegistry, core: Core): void {
  r.add({
    method: 'POST',
    url: '/v1/keys',
    tag: 'keys',
    auth: 'key',
    summary: 'Create an API key (the key is shown only in this response)',
    body: CreateKeyBody,
    response: { status: 201, schema: z.object({ key: z.string(), info: ApiKey }) },
    handler: ({ caller, body }) => core.keys.create(caller, body),
  });
  r.add({
    method: 'GET',
    url: '/v1/keys',
    tag: 'keys',
    auth: 'key',
    summary: "List the team's API keys (never the keys themselves)",
    response: { status: 200, schema: z.object({ keys: z.array(ApiKey) }) },
    handler: async ({ caller }) => ({ keys: await core.keys.list(caller) }),
  });
  r.add({
    method: 'DELETE',
    url: '/v1/keys/:id',
    tag: 'keys',
    auth: 'key',
    summary: 'Revoke an API key',
    params: IdParams,
    response: { status: 200, schema: ApiKey },
    handler: ({ caller, params }) => core.keys.revoke(caller, params.id),
  });
  r.add({
    method: 'GET',
    url: '/v1/audit',
    tag: 'audit',
    auth: 'key',
    summary: "The team's audit log, newest first (the admin sees every team)",
    query: AuditQuery,
    response: {
      status: 200,
      schema: z.object({ entries: z.array(AuditEntry), nextToken: z.string().nullable() }),
    },
    handler: ({ caller, query }) =>
      core.audit.list({
        teamId: caller.isAdmin ? null : caller.teamId,
        limit: query.limit,
        before: query.nextToken ? Number(query.nextToken) : undefined,
        action: query.action,
      }),
  });
}
