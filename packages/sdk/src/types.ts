/** Shapes of the native `/v1` API (see docs/api.md and `/openapi.json`). */

export type SandboxStatus =
  | 'starting'
  | 'running'
  | 'pausing'
  | 'paused'
  | 'resuming'
  | 'stopping'
  | 'stopped'
  | 'missing'
  | 'error';

export interface Sandbox {
  sandboxId: string;
  teamId: string;
  templateId: string;
  hostId: string;
  status: SandboxStatus;
  vcpus: number;
  memoryMb: number;
  diskMb: number;
  timeoutSeconds: number;
  lifecycle: { onTimeout: 'kill' | 'pause'; autoResume: boolean };
  metadata: Record<string, string>;
  envdAccessToken: string;
  createdAt: string;
  startedAt: string | null;
  endAt: string | null;
  lastActiveAt: string;
  error: string | null;
}

export interface CreateSandbox {
  templateId?: string;
  vcpus?: number;
  memoryMb?: number;
  diskMb?: number;
  timeoutSeconds?: number;
  lifecycle?: { onTimeout?: 'kill' | 'pause'; autoResume?: boolean };
  metadata?: Record<string, string>;
  envVars?: Record<string, string>;
}

export interface ListSandboxes {
  metadata?: Record<string, string>;
  status?: SandboxStatus[];
  limit?: number;
  nextToken?: string;
}

export interface Exec {
  cmd?: string;
  argv?: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutEncoding: 'utf8' | 'base64';
  stderrEncoding: 'utf8' | 'base64';
  truncated: boolean;
  error?: string;
}

export interface MetricPoint {
  timestamp: string;
  cpuUsedPct: number;
  cpuCount: number;
  memUsedBytes: number;
  memTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
}

export interface Template {
  templateId: string;
  teamId: string;
  kind: 'builtin' | 'snapshot';
  hostId: string | null;
  sourceSandboxId: string | null;
  vcpus: number;
  memoryMb: number;
  diskMb: number;
  sizeBytes: number;
  createdAt: string;
}

export interface Host {
  hostId: string;
  agentUrl: string;
  status: 'ready' | 'unreachable';
  capacity: { vcpus: number; memoryMb: number; diskMb: number };
  load: {
    vcpusUsed: number;
    memoryUsedMb: number;
    diskUsedMb: number;
    sandboxesRunning: number;
    sandboxesPaused: number;
  };
  accelerator: string;
  lastHeartbeatAt: string;
  createdAt: string;
}

export interface ApiKey {
  id: string;
  teamId: string;
  name: string;
  prefix: string;
  isAdmin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface AuditEntry {
  id: number;
  teamId: string | null;
  actor: string;
  action: string;
  targetId: string | null;
  details: Record<string, unknown>;
  createdAt: string;
}
