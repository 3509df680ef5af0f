import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * Table types for Kysely. One schema for SQLite and PostgreSQL, so only portable column
 * types are used: text, integer/bigint (timestamps are epoch milliseconds), real.
 * JSON values (metadata, audit details) are stored as text and parsed at the service edge.
 */

export interface TeamsTable {
  id: string;
  name: string;
  created_at: number;
}

export interface ApiKeysTable {
  id: string;
  team_id: string;
  name: string;
  /** sha256 of the whole key; the key itself is shown once and never stored. */
  key_hash: string;
  /** First characters of the key, so a user can tell keys apart in `wrenn keys ls`. */
  prefix: string;
  is_admin: number;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export type HostStatus = 'ready' | 'unreachable';

export interface HostsTable {
  id: string;
  agent_url: string;
  /**
   * The control plane presents this token on every call to the agent, so it must be able to
   * read it back (unlike API keys, which only need verifying).
   */
  host_token: string;
  status: HostStatus;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  vcpus_used: number;
  memory_used_mb: number;
  disk_used_mb: number;
  sandboxes_running: number;
  sandboxes_paused: number;
  accelerator: string;
  last_heartbeat_at: number;
  created_at: number;
}

export interface RegistrationTokensTable {
  id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  host_id: string | null;
}

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

export interface SandboxesTable {
  id: string;
  team_id: string;
  host_id: string;
  template_id: string;
  /** Team owning the template (`public` for built-ins). */
  template_team_id: string;
  status: SandboxStatus;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  timeout_seconds: number;
  on_timeout: 'kill' | 'pause';
  auto_resume: number;
  metadata: string;
  envd_access_token: string;
  error: string | null;
  created_at: number;
  started_at: number | null;
  /** Epoch ms when the timeout fires; null = no timeout. */
  end_at: number | null;
  last_active_at: number;
  /** When status last changed: transient statuses get a grace period measured from here. */
  status_changed_at: number;
}

/** One row per metadata pair, so the list filter is an indexed lookup on both databases. */
export interface SandboxMetadataTable {
  sandbox_id: string;
  key: string;
  value: string;
}

export interface TemplatesTable {
  team_id: string;
  id: string;
  /** `builtin` templates exist on every host; `snapshot` ones only on `host_id`. */
  kind: 'builtin' | 'snapshot';
  host_id: string | null;
  source_sandbox_id: string | null;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  size_bytes: number;
  created_at: number;
}

export interface AuditLogTable {
  id: Generated<number>;
  team_id: string | null;
  /** API key id, host id or `system` (reconciler). */
  actor: string;
  action: string;
  target_id: string | null;
  details: string;
  created_at: number;
}

export interface MetricPointsTable {
  sandbox_id: string;
  ts: number;
  cpu_used_pct: number;
  cpu_count: number;
  mem_used_bytes: number;
  mem_total_bytes: number;
  disk_used_bytes: number;
  disk_total_bytes: number;
}

export interface Database {
  teams: TeamsTable;
  api_keys: ApiKeysTable;
  hosts: HostsTable;
  registration_tokens: RegistrationTokensTable;
  sandboxes: SandboxesTable;
  sandbox_metadata: SandboxMetadataTable;
  templates: TemplatesTable;
  audit_log: AuditLogTable;
  metric_points: MetricPointsTable;
}

export type Team = Selectable<TeamsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type HostRow = Selectable<HostsTable>;
export type SandboxRow = Selectable<SandboxesTable>;
export type NewSandboxRow = Insertable<SandboxesTable>;
export type SandboxUpdate = Updateable<SandboxesTable>;
export type TemplateRow = Selectable<TemplatesTable>;
export type AuditRow = Selectable<AuditLogTable>;
export type MetricPointRow = Selectable<MetricPointsTable>;
