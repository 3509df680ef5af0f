import { agentv1 } from '@wrenn/proto';
import type { SandboxRow, SandboxStatus } from '../db/schema.ts';

/** What the API returns for a sandbox (native `/v1`; the E2B routes map from this too). */
export interface SandboxView {
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
  /** Sent as X-Access-Token to envd through the gateway. */
  envdAccessToken: string;
  createdAt: string;
  startedAt: string | null;
  endAt: string | null;
  lastActiveAt: string;
  error: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function sandboxView(r: SandboxRow): SandboxView {
  return {
    sandboxId: r.id,
    teamId: r.team_id,
    templateId: r.template_id,
    hostId: r.host_id,
    status: r.status,
    vcpus: r.vcpus,
    memoryMb: r.memory_mb,
    diskMb: r.disk_mb,
    timeoutSeconds: r.timeout_seconds,
    lifecycle: { onTimeout: r.on_timeout, autoResume: r.auto_resume === 1 },
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    envdAccessToken: r.envd_access_token,
    createdAt: iso(r.created_at)!,
    startedAt: iso(r.started_at),
    endAt: iso(r.end_at),
    lastActiveAt: iso(r.last_active_at)!,
    error: r.error,
  };
}

const FROM_AGENT: Record<number, SandboxStatus> = {
  [agentv1.SandboxStatus.STARTING]: 'starting',
  [agentv1.SandboxStatus.RUNNING]: 'running',
  [agentv1.SandboxStatus.PAUSING]: 'pausing',
  [agentv1.SandboxStatus.PAUSED]: 'paused',
  [agentv1.SandboxStatus.RESUMING]: 'resuming',
  [agentv1.SandboxStatus.STOPPING]: 'stopping',
  [agentv1.SandboxStatus.STOPPED]: 'stopped',
  [agentv1.SandboxStatus.ERROR]: 'error',
};

export function statusFromAgent(s: agentv1.SandboxStatus): SandboxStatus {
  return FROM_AGENT[s] ?? 'error';
}

/** Fields of a DB row that follow the agent's report. end_at 0 on the wire = no timeout. */
export function rowFieldsFromAgent(info: agentv1.SandboxInfo) {
  return {
    status: statusFromAgent(info.status),
    started_at: info.startedAtMs ? Number(info.startedAtMs) : null,
    end_at: info.endAtMs ? Number(info.endAtMs) : null,
    error: info.error || null,
  };
}

/** Paging token: opaque to clients, `<created_at>:<id>` of the last row of the page. */
export function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(`${createdAt}:${id}`).toString('base64url');
}

export function decodeCursor(token: string): { createdAt: number; id: string } | null {
  const raw = Buffer.from(token, 'base64url').toString();
  const m = /^(\d+):([a-z0-9-]+)$/.exec(raw);
  return m ? { createdAt: Number(m[1]), id: m[2]! } : null;
}
