import { isValidId, WrennError } from '@wrenn/common';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod/v4';
import type { Core } from '../core.ts';
import type { SandboxStatus } from '../db/schema.ts';
import { fromFastifyError } from '../http/errors.ts';
import { RouteRegistry } from '../http/route.ts';
import type { Caller } from '../services/keys.ts';
import type { SandboxView } from '../services/sandbox-view.ts';
import {
  detailOut,
  type E2bEdge,
  type E2bState,
  listedOut,
  parseMetadataFilter,
  STATUSES_BY_STATE,
  sandboxOut,
} from './map.ts';
import {
  E2bConnectBody,
  E2bIdParams,
  E2bListedSandbox,
  E2bListQuery,
  E2bListV1Query,
  E2bMetric,
  E2bMetricsQuery,
  E2bNewSandbox,
  E2bPauseBody,
  E2bResumeBody,
  E2bSandbox,
  E2bSandboxDetail,
  E2bSnapshot,
  E2bSnapshotBody,
  E2bSnapshotListQuery,
  E2bTemplateParams,
  E2bTimeoutBody,
} from './schemas.ts';

const TAG = 'e2b';

/**
 * The E2B-compatible REST API (DESIGN.md section 5), a thin edge over the same `Core` as
 * the native `/v1` routes. Registered in its own Fastify scope so that every error here,
 * including authentication and validation, leaves in E2B's shape: `{code: <HTTP status>,
 * message}` — the SDK branches on `error.code === 404` / `409`.
 *
 * @example
 *   e2bRoutes(app, registry, core); // in buildServer, beside the native routes
 */
export function e2bRoutes(app: FastifyInstance, registry: RouteRegistry, core: Core): void {
  app.register(async (scope) => {
    scope.setErrorHandler((error, request, reply) => {
      const err = error instanceof WrennError ? error : fromFastifyError(error as FastifyError);
      if (err.code === 'internal') request.log.error({ err: error }, 'unhandled error');
      const raw = (error as FastifyError).statusCode;
      const status =
        !(error instanceof WrennError) && raw && raw >= 400 && raw < 500 ? raw : err.httpStatus;
      reply.code(status).type('application/json').send({ code: status, message: err.message });
    });
    const r = new RouteRegistry(scope);
    register(r, core);
    // One OpenAPI document lists both edges.
    registry.specs.push(...r.specs);
  });
}

/** An id that cannot exist is a 404 here (the SDK's kill() answers false on 404). */
function sandboxId(raw: string): string {
  if (!isValidId(raw)) throw new WrennError('not_found', `sandbox '${raw}' not found`);
  return raw;
}

/** E2B forgets killed sandboxes: a stopped row is a 404, as for a sandbox that never was. */
async function liveSandbox(core: Core, caller: Caller, id: string): Promise<SandboxView> {
  const v = await core.sandboxes.get(caller, sandboxId(id));
  if (v.status === 'stopped') throw new WrennError('not_found', `sandbox '${id}' not found`);
  return v;
}

const TRANSIENT = new Set<SandboxStatus>(['starting', 'pausing', 'resuming', 'stopping']);
const SETTLE_POLL_MS = 200;
const SETTLE_MAX_MS = 120_000;

/**
 * E2B's API lets a call that needs a settled sandbox wait out a pause or resume in flight
 * (the TTL reaper's auto-pause, another client's connect) instead of failing; so does this
 * edge, for connect/resume, pause and setTimeout. Bounded: past it, the service's own
 * conflict answers.
 */
async function settled(core: Core, caller: Caller, id: string): Promise<SandboxView> {
  const deadline = Date.now() + SETTLE_MAX_MS;
  let v = await liveSandbox(core, caller, id);
  while (TRANSIENT.has(v.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
    v = await liveSandbox(core, caller, id);
  }
  return v;
}

function unsupported(what: string): never {
  throw new WrennError('invalid_argument', `${what} is not supported by Wrenn (see docs/e2b.md)`);
}

function parseState(raw: string | undefined, fallback: E2bState[]): SandboxStatus[] {
  const states = raw
    ? raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : fallback;
  return states.flatMap((s) => {
    if (s !== 'running' && s !== 'paused')
      throw new WrennError(
        'invalid_argument',
        `query.state: unknown state '${s}' (running, paused)`,
      );
    return STATUSES_BY_STATE[s];
  });
}

function register(r: RouteRegistry, core: Core): void {
  const svc = core.sandboxes;
  const edge: E2bEdge = { domain: core.config.sandboxDomain ?? null };

  const create = async ({
    caller,
    body,
  }: {
    caller: Caller;
    body: z.infer<typeof E2bNewSandbox>;
  }) => {
    if (body.mcp != null) unsupported('mcp');
    if (body.volumeMounts?.length) unsupported('volumeMounts');
    if (body.iam != null) unsupported('iam');
    if (body.network != null && Object.keys(body.network as object).length > 0)
      unsupported('network (egress rules)');
    if (body.allow_internet_access === false)
      unsupported('allow_internet_access: false (no egress policy in user-mode networking)');
    if (body.autoPauseMemory === false)
      unsupported('autoPauseMemory: false (filesystem-only pause)');
    const autoResume =
      typeof body.autoResume === 'boolean' ? body.autoResume : body.autoResume?.enabled;
    // E2B reports an unknown template as 404; the service's invalid_argument is for /v1.
    const templateId = body.templateID.toLowerCase().replace(/:latest$/, '');
    if (!isValidId(templateId) || !(await core.templates.resolve(caller.teamId, templateId))) {
      throw new WrennError('not_found', `template '${body.templateID}' not found`);
    }
    const v = await svc.create(caller, {
      templateId,
      ...(body.timeout !== undefined ? { timeoutSeconds: body.timeout } : {}),
      lifecycle: { onTimeout: body.autoPause ? 'pause' : 'kill', autoResume: autoResume ?? false },
      metadata: body.metadata ?? {},
      envVars: body.envVars ?? {},
    });
    return sandboxOut(v, edge);
  };
  for (const url of ['/sandboxes', '/v2/sandboxes']) {
    r.add({
      method: 'POST',
      url,
      tag: TAG,
      auth: 'key',
      summary: `Create a sandbox (e2b ${url === '/sandboxes' ? '≤ 2.4x' : '≥ 2.5x'} SDK)`,
      body: E2bNewSandbox,
      response: { status: 201, schema: E2bSandbox },
      handler: create,
    });
  }

  r.add({
    method: 'GET',
    url: '/v2/sandboxes',
    tag: TAG,
    auth: 'key',
    summary:
      'List sandboxes (running and paused by default), newest first; the next page token is in `x-next-token`',
    query: E2bListQuery,
    response: { status: 200, schema: z.array(E2bListedSandbox) },
    handler: async ({ caller, query, reply }) => {
      if (query.order === 'asc') unsupported('order=asc (lists are newest first)');
      const after = query.startedAfter !== undefined ? Date.parse(query.startedAfter) : undefined;
      if (after !== undefined && Number.isNaN(after)) {
        throw new WrennError(
          'invalid_argument',
          `query.startedAfter: not a date: '${query.startedAfter}'`,
        );
      }
      const template = query.template?.toLowerCase().replace(/:latest$/, '');
      const page = await svc.list(caller, {
        metadata: parseMetadataFilter(query.metadata),
        statuses: parseState(query.state, ['running', 'paused']),
        limit: query.limit,
        ...(query.nextToken ? { nextToken: query.nextToken } : {}),
      });
      if (page.nextToken) reply.header('x-next-token', page.nextToken);
      // Filtered after paging: a page may hold fewer than `limit`; the token stays right.
      return page.sandboxes
        .map(listedOut)
        .filter(
          (s) =>
            (template === undefined || s.templateID === template) &&
            (after === undefined || Date.parse(s.startedAt) >= after),
        );
    },
  });

  r.add({
    method: 'GET',
    url: '/sandboxes',
    tag: TAG,
    auth: 'key',
    summary: 'List running sandboxes (v1: no paging)',
    query: E2bListV1Query,
    response: { status: 200, schema: z.array(E2bListedSandbox) },
    handler: async ({ caller, query }) => {
      const all: SandboxView[] = [];
      let nextToken: string | undefined;
      do {
        const page = await svc.list(caller, {
          metadata: parseMetadataFilter(query.metadata),
          statuses: parseState(query.state, ['running']),
          limit: 1000,
          ...(nextToken ? { nextToken } : {}),
        });
        all.push(...page.sandboxes);
        nextToken = page.nextToken ?? undefined;
      } while (nextToken);
      return all.map(listedOut);
    },
  });

  r.add({
    method: 'GET',
    url: '/sandboxes/:sandboxID',
    tag: TAG,
    auth: 'key',
    summary: 'Get a sandbox (404 once killed)',
    params: E2bIdParams,
    response: { status: 200, schema: E2bSandboxDetail },
    handler: async ({ caller, params }) =>
      detailOut(await liveSandbox(core, caller, params.sandboxID), edge),
  });

  r.add({
    method: 'DELETE',
    url: '/sandboxes/:sandboxID',
    tag: TAG,
    auth: 'key',
    summary: 'Kill a sandbox (404 when unknown or already killed)',
    params: E2bIdParams,
    response: { status: 204 },
    handler: async ({ caller, params }) => {
      await svc.kill(caller, sandboxId(params.sandboxID));
    },
  });

  r.add({
    method: 'POST',
    url: '/sandboxes/:sandboxID/timeout',
    tag: TAG,
    auth: 'key',
    summary: 'Set the timeout in seconds, counted from now (may shorten it)',
    params: E2bIdParams,
    body: E2bTimeoutBody,
    response: { status: 204 },
    handler: async ({ caller, params, body }) => {
      await settled(core, caller, params.sandboxID);
      await svc.setTimeout(caller, params.sandboxID, body.timeout);
    },
  });

  r.add({
    method: 'POST',
    url: '/sandboxes/:sandboxID/pause',
    tag: TAG,
    auth: 'key',
    summary: 'Pause a running sandbox with its memory (409 when already paused)',
    params: E2bIdParams,
    body: E2bPauseBody,
    response: { status: 204 },
    handler: async ({ caller, params, body }) => {
      if (body.memory === false) unsupported('pause without memory (memory: false)');
      await settled(core, caller, params.sandboxID);
      await svc.pause(caller, params.sandboxID);
    },
  });

  /** Connect and resume: 201 when this call resumed the sandbox, 200 when it was running. */
  const connect = async (
    caller: Caller,
    id: string,
    timeout: number | undefined,
    reply: FastifyReply,
  ) => {
    await settled(core, caller, id);
    const { sandbox, resumed } = await svc.connect(
      caller,
      id,
      timeout !== undefined ? { timeoutSeconds: timeout } : {},
    );
    return reply.code(resumed ? 201 : 200).send(sandboxOut(sandbox, edge));
  };
  for (const url of ['/sandboxes/:sandboxID/connect', '/v2/sandboxes/:sandboxID/connect']) {
    r.add({
      method: 'POST',
      url,
      tag: TAG,
      auth: 'key',
      summary:
        'Connect: resume when paused (201), else keep running (200); the timeout only ever extends end-at',
      params: E2bIdParams,
      body: E2bConnectBody,
      response: { status: 200, schema: E2bSandbox, description: '200 running, 201 resumed' },
      handler: ({ caller, params, body, reply }) => {
        if (body.memory === false) unsupported('resume by reboot (memory: false)');
        return connect(caller, params.sandboxID, body.timeout, reply);
      },
    });
  }
  r.add({
    method: 'POST',
    url: '/sandboxes/:sandboxID/resume',
    tag: TAG,
    auth: 'key',
    summary: 'Resume (deprecated in E2B, same as connect): 201 resumed, 200 already running',
    params: E2bIdParams,
    body: E2bResumeBody,
    response: { status: 201, schema: E2bSandbox, description: '200 running, 201 resumed' },
    handler: async ({ caller, params, body, reply }) => {
      if (body.autoPause !== undefined) {
        const v = await liveSandbox(core, caller, params.sandboxID);
        if (body.autoPause !== (v.lifecycle.onTimeout === 'pause'))
          unsupported('changing autoPause at resume');
      }
      return connect(caller, params.sandboxID, body.timeout, reply);
    },
  });

  r.add({
    method: 'GET',
    url: '/sandboxes/:sandboxID/metrics',
    tag: TAG,
    auth: 'key',
    summary: 'CPU, memory and disk samples between start and end (unix seconds)',
    params: E2bIdParams,
    query: E2bMetricsQuery,
    response: { status: 200, schema: z.array(E2bMetric) },
    handler: async ({ caller, params, query }) => {
      await liveSandbox(core, caller, params.sandboxID);
      const points = await svc.metrics(caller, params.sandboxID, (query.start ?? 0) * 1000);
      const endMs = query.end !== undefined ? query.end * 1000 + 999 : Number.POSITIVE_INFINITY;
      return points
        .filter((p) => Date.parse(p.timestamp) <= endMs)
        .map((p) => ({
          timestamp: p.timestamp,
          timestampUnix: Math.floor(Date.parse(p.timestamp) / 1000),
          cpuCount: p.cpuCount,
          cpuUsedPct: p.cpuUsedPct,
          memUsed: p.memUsedBytes,
          memTotal: p.memTotalBytes,
          diskUsed: p.diskUsedBytes,
          diskTotal: p.diskTotalBytes,
        }));
    },
  });

  r.add({
    method: 'POST',
    url: '/sandboxes/:sandboxID/snapshots',
    tag: TAG,
    auth: 'key',
    summary:
      'Snapshot a running sandbox into a template new sandboxes can start from (the sandbox keeps running)',
    params: E2bIdParams,
    body: E2bSnapshotBody,
    response: { status: 201, schema: E2bSnapshot },
    handler: async ({ caller, params, body }) => {
      await liveSandbox(core, caller, params.sandboxID);
      const name = body.name ?? `snapshot-${params.sandboxID}-${Date.now().toString(36)}`;
      const t = await svc.snapshot(caller, params.sandboxID, name);
      return { snapshotID: t.templateId, names: [t.templateId] };
    },
  });

  r.add({
    method: 'GET',
    url: '/snapshots',
    tag: TAG,
    auth: 'key',
    summary:
      "The team's snapshot templates, newest first, optionally of one sandbox or one name (one page)",
    query: E2bSnapshotListQuery,
    response: { status: 200, schema: z.array(E2bSnapshot) },
    handler: async ({ caller, query }) => {
      const all = await core.templates.list(caller);
      return all
        .filter((t) => t.teamId === caller.teamId && t.kind === 'snapshot')
        .filter(
          (t) =>
            (query.sandboxID === undefined || t.sourceSandboxId === query.sandboxID) &&
            (query.name === undefined || t.templateId === query.name),
        )
        .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))
        .slice(0, query.limit ?? 1000)
        .map((t) => ({ snapshotID: t.templateId, names: [t.templateId] }));
    },
  });

  r.add({
    method: 'DELETE',
    url: '/templates/:templateID',
    tag: TAG,
    auth: 'key',
    summary: "Delete one of the team's templates (a snapshot); 404 when unknown",
    params: E2bTemplateParams,
    response: { status: 204 },
    handler: async ({ caller, params }) => {
      if (!isValidId(params.templateID))
        throw new WrennError('not_found', `template '${params.templateID}' not found`);
      await core.templates.delete(caller, params.templateID);
    },
  });
}
