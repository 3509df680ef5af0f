import { ID_PATTERN } from '@wrenn/common';
import { z } from 'zod/v4';

/**
 * Request and response shapes of the native `/v1` API. The same objects validate requests
 * (http/validate.ts) and generate `/openapi.json` (http/openapi.ts), so they cannot drift.
 */

export const Id = z
  .string()
  .regex(ID_PATTERN, 'must be lowercase letters, digits and dashes (max 63)');
export const IdParams = z.object({ id: Id });

const StringMap = z.record(z.string().min(1).max(256), z.string().max(4096));

export const ErrorBody = z
  .object({ code: z.string(), message: z.string() })
  .meta({ id: 'Error', description: 'Every error: a stable code and a human-readable message.' });

export const Lifecycle = z.object({
  onTimeout: z
    .enum(['kill', 'pause'])
    .default('kill')
    .describe('What happens when the timeout elapses'),
  autoResume: z
    .boolean()
    .default(false)
    .describe('Traffic through the gateway to a paused sandbox resumes it'),
});

export const CreateSandboxBody = z
  .object({
    templateId: Id.default('base'),
    vcpus: z.int().min(1).max(64).optional(),
    memoryMb: z.int().min(128).max(1_048_576).optional(),
    diskMb: z.int().min(256).max(4_194_304).optional(),
    timeoutSeconds: z
      .int()
      .min(0)
      .max(31 * 86_400)
      .optional()
      .describe('0 = no timeout'),
    lifecycle: Lifecycle.optional(),
    metadata: StringMap.optional(),
    envVars: StringMap.optional(),
  })
  .strict();

export const Sandbox = z
  .object({
    sandboxId: z.string(),
    teamId: z.string(),
    templateId: z.string(),
    hostId: z.string(),
    status: z.enum([
      'starting',
      'running',
      'pausing',
      'paused',
      'resuming',
      'stopping',
      'stopped',
      'missing',
      'error',
    ]),
    vcpus: z.int(),
    memoryMb: z.int(),
    diskMb: z.int(),
    timeoutSeconds: z.int(),
    lifecycle: z.object({ onTimeout: z.enum(['kill', 'pause']), autoResume: z.boolean() }),
    metadata: z.record(z.string(), z.string()),
    envdAccessToken: z.string(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    endAt: z.string().nullable(),
    lastActiveAt: z.string(),
    error: z.string().nullable(),
  })
  .meta({ id: 'Sandbox' });

export const ListSandboxesQuery = z
  .object({
    metadata: z.string().optional().describe('URL-encoded `k=v&k2=v2`, as the e2b SDK sends it'),
    status: z.string().optional().describe('Comma-separated statuses (default: all but stopped)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    nextToken: z.string().max(200).optional(),
  })
  .strict();

export const SandboxList = z.object({
  sandboxes: z.array(Sandbox),
  nextToken: z.string().nullable(),
});

export const TimeoutBody = z
  .object({
    timeoutSeconds: z
      .int()
      .min(0)
      .max(31 * 86_400),
  })
  .strict();
export const ResumeBody = z
  .object({
    timeoutSeconds: z
      .int()
      .min(0)
      .max(31 * 86_400)
      .optional(),
  })
  .strict();

export const ExecBody = z
  .object({
    cmd: z
      .string()
      .min(1)
      .max(1 << 20)
      .optional()
      .describe('Shell command, run with /bin/sh -c'),
    argv: z.array(z.string()).min(1).max(4096).optional().describe('Exact argv, no shell'),
    env: StringMap.optional(),
    cwd: z.string().max(4096).optional(),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
      .optional()
      .describe('Default: user'),
    timeoutMs: z.int().min(1).max(3_600_000).optional(),
  })
  .strict()
  .refine((b) => (b.cmd === undefined) !== (b.argv === undefined), {
    message: 'give exactly one of cmd and argv',
  });

export const ExecResult = z
  .object({
    exitCode: z.int(),
    stdout: z.string(),
    stderr: z.string(),
    stdoutEncoding: z.enum(['utf8', 'base64']),
    stderrEncoding: z.enum(['utf8', 'base64']),
    truncated: z.boolean(),
    error: z.string().optional(),
  })
  .meta({ id: 'ExecResult' });

export const FileQuery = z
  .object({
    path: z.string().min(1).max(4096),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
      .optional(),
  })
  .strict();

export const MetricsQuery = z
  .object({ since: z.coerce.number().int().min(0).optional().describe('epoch ms') })
  .strict();
export const MetricPoint = z.object({
  timestamp: z.string(),
  cpuUsedPct: z.number(),
  cpuCount: z.int(),
  memUsedBytes: z.number(),
  memTotalBytes: z.number(),
  diskUsedBytes: z.number(),
  diskTotalBytes: z.number(),
});
export const MetricsResult = z.object({ points: z.array(MetricPoint) });

export const Template = z
  .object({
    templateId: z.string(),
    teamId: z.string(),
    kind: z.enum(['builtin', 'snapshot']),
    hostId: z.string().nullable(),
    sourceSandboxId: z.string().nullable(),
    vcpus: z.int(),
    memoryMb: z.int(),
    diskMb: z.int(),
    sizeBytes: z.number(),
    createdAt: z.string(),
  })
  .meta({ id: 'Template' });
export const SnapshotBody = z.object({ sandboxId: Id, templateId: Id }).strict();

export const Capacity = z.object({
  vcpus: z.int().min(1).max(100_000),
  memoryMb: z.int().min(1),
  diskMb: z.int().min(1),
});
export const Load = z.object({
  vcpusUsed: z.int().min(0),
  memoryUsedMb: z.number().min(0),
  diskUsedMb: z.number().min(0),
  sandboxesRunning: z.int().min(0),
  sandboxesPaused: z.int().min(0),
});
export const RegisterBody = z
  .object({
    registrationToken: z.string().min(1).max(200),
    agentUrl: z.url({ protocol: /^https?$/ }),
    capacity: Capacity,
  })
  .strict();
export const HeartbeatBody = z.object({
  capacity: Capacity,
  load: Load,
  accelerator: z.string().max(32).optional(),
  agentUrl: z.url({ protocol: /^https?$/ }).optional(),
});
export const Host = z
  .object({
    hostId: z.string(),
    agentUrl: z.string(),
    status: z.enum(['ready', 'unreachable']),
    capacity: Capacity,
    load: Load,
    accelerator: z.string(),
    lastHeartbeatAt: z.string(),
    createdAt: z.string(),
  })
  .meta({ id: 'Host' });

export const CreateKeyBody = z
  .object({
    name: z.string().min(1).max(100),
    teamId: Id.optional().describe(
      'Admin only: create the key in (and if needed create) this team',
    ),
  })
  .strict();
export const ApiKey = z
  .object({
    id: z.string(),
    teamId: z.string(),
    name: z.string(),
    prefix: z.string(),
    isAdmin: z.boolean(),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' });

export const AuditQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    nextToken: z.string().regex(/^\d+$/).optional(),
    action: z.string().max(100).optional(),
  })
  .strict();
export const AuditEntry = z.object({
  id: z.int(),
  teamId: z.string().nullable(),
  actor: z.string(),
  action: z.string(),
  targetId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
});
