import { z } from 'zod/v4';

/**
 * Request and response shapes of the E2B-compatible API, with E2B's field names
 * (`templateID`, `sandboxID`, `envVars`, `allow_internet_access`, …) as the official `e2b`
 * npm SDK sends and reads them. Requests are not `.strict()`: the SDK adds fields over
 * time (`mcp`, `iam`, `network`, `volumeMounts`), and an unknown field that asks for
 * nothing must not break an older server. Fields that ask for something Wrenn cannot do
 * are refused explicitly in routes.ts, never ignored.
 */

const StringMap = z.record(z.string().min(1).max(256), z.string().max(4096));
/** E2B timeouts are whole seconds. */
const Seconds = z
  .int()
  .min(0)
  .max(31 * 86_400);

export const E2bError = z
  .object({ code: z.int().describe('The HTTP status'), message: z.string() })
  .meta({
    id: 'E2bError',
    description: "E2B's error shape: the HTTP status as `code`, and a message.",
  });

export const E2bIdParams = z.object({ sandboxID: z.string().max(200) });

export const E2bNewSandbox = z.object({
  templateID: z.string().min(1).max(200),
  timeout: Seconds.optional().describe(
    'Seconds until the sandbox is killed (or paused with autoPause); default 300',
  ),
  autoPause: z.boolean().optional(),
  autoPauseMemory: z.boolean().optional(),
  autoResume: z.union([z.object({ enabled: z.boolean() }), z.boolean()]).optional(),
  secure: z.boolean().optional(),
  allow_internet_access: z.boolean().optional(),
  metadata: StringMap.nullish(),
  envVars: StringMap.nullish(),
  mcp: z.unknown().optional(),
  network: z.unknown().optional(),
  iam: z.unknown().optional(),
  volumeMounts: z.array(z.unknown()).optional(),
});

/** What create, connect and resume return (E2B's `Sandbox`). */
export const E2bSandbox = z
  .object({
    templateID: z.string(),
    sandboxID: z.string(),
    alias: z.string().optional(),
    clientID: z.string(),
    envdVersion: z.string(),
    envdAccessToken: z.string(),
    domain: z.string().nullable(),
  })
  .meta({ id: 'E2bSandbox' });

export const E2bLifecycle = z.object({
  onTimeout: z.enum(['kill', 'pause']),
  autoResume: z.boolean(),
});

/** List entries (E2B's `ListedSandbox`). */
export const E2bListedSandbox = z
  .object({
    templateID: z.string(),
    alias: z.string().optional(),
    sandboxID: z.string(),
    clientID: z.string(),
    startedAt: z.string(),
    endAt: z.string(),
    cpuCount: z.int(),
    memoryMB: z.int(),
    diskSizeMB: z.int(),
    metadata: z.record(z.string(), z.string()),
    state: z.enum(['running', 'paused']),
    envdVersion: z.string(),
    volumeMounts: z.array(z.unknown()),
  })
  .meta({ id: 'E2bListedSandbox' });

/** `GET /sandboxes/{id}` (E2B's `SandboxDetail`). */
export const E2bSandboxDetail = E2bListedSandbox.extend({
  envdAccessToken: z.string(),
  domain: z.string().nullable(),
  allowInternetAccess: z.boolean(),
  lifecycle: E2bLifecycle,
}).meta({ id: 'E2bSandboxDetail' });

export const E2bListQuery = z.object({
  metadata: z
    .string()
    .max(8192)
    .optional()
    .describe('URL-encoded `k=v&k2=v2` (keys and values URL-encoded once more)'),
  state: z.string().max(100).optional().describe('Comma-separated: running, paused (default both)'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  nextToken: z.string().max(200).optional(),
  template: z.string().max(200).optional().describe('Only sandboxes of this template'),
  startedAfter: z
    .string()
    .max(64)
    .optional()
    .describe('ISO 8601: only sandboxes started at or after it'),
  order: z
    .enum(['asc', 'desc'])
    .optional()
    .describe('By start time; only desc (newest first) is supported'),
});
/** v1 list: no paging in E2B; the metadata filter only. */
export const E2bListV1Query = z.object({
  metadata: z.string().max(8192).optional(),
  state: z.string().max(100).optional(),
});

export const E2bTimeoutBody = z.object({ timeout: Seconds });
export const E2bConnectBody = z.object({
  timeout: Seconds.optional(),
  memory: z.boolean().optional(),
});
export const E2bResumeBody = z.object({
  timeout: Seconds.optional(),
  autoPause: z.boolean().optional(),
});
export const E2bPauseBody = z.object({ memory: z.boolean().optional() });
export const E2bRefreshBody = z.object({ duration: Seconds.optional() });

export const E2bMetricsQuery = z.object({
  start: z.coerce.number().int().min(0).optional().describe('Unix seconds'),
  end: z.coerce.number().int().min(0).optional().describe('Unix seconds'),
});

export const E2bMetric = z
  .object({
    timestamp: z.string(),
    timestampUnix: z.int(),
    cpuCount: z.int(),
    cpuUsedPct: z.number(),
    memUsed: z.number(),
    memTotal: z.number(),
    diskUsed: z.number(),
    diskTotal: z.number(),
  })
  .meta({ id: 'E2bSandboxMetric' });

export const E2bSnapshotBody = z.object({ name: z.string().max(63).optional() });
export const E2bSnapshot = z
  .object({ snapshotID: z.string(), names: z.array(z.string()) })
  .meta({ id: 'E2bSnapshot' });
export const E2bSnapshotListQuery = z.object({
  sandboxID: z.string().max(200).optional(),
  name: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  nextToken: z.string().max(200).optional(),
});
export const E2bTemplateParams = z.object({ templateID: z.string().max(200) });
