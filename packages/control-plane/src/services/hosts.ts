import { newId, WrennError } from '@wrenn/common';
import type { AgentPool } from '../agents/pool.ts';
import { hashSecret, newToken, secretsEqual } from '../auth/secrets.ts';
import type { Db } from '../db/database.ts';
import type { HostRow } from '../db/schema.ts';
import type { AuditLog } from './audit.ts';
import type { Caller } from './keys.ts';

export interface Capacity {
  vcpus: number;
  memoryMb: number;
  diskMb: number;
}

export interface HostLoadReport {
  vcpusUsed: number;
  memoryUsedMb: number;
  diskUsedMb: number;
  sandboxesRunning: number;
  sandboxesPaused: number;
}

export interface HostView {
  hostId: string;
  agentUrl: string;
  status: 'ready' | 'unreachable';
  capacity: Capacity;
  load: HostLoadReport;
  accelerator: string;
  lastHeartbeatAt: string;
  createdAt: string;
}

/** Statuses that occupy a host's CPU and memory (a paused sandbox holds only disk). */
export const LIVE_STATUSES = ['starting', 'running', 'pausing', 'resuming', 'stopping'] as const;

export class HostService {
  /** Called when a host comes back after being unreachable, so it is reconciled at once. */
  onHostRecovered: (hostId: string) => void = () => {};

  constructor(
    private readonly db: Db,
    private readonly agents: AgentPool,
    private readonly audit: AuditLog,
    private readonly clock: () => number,
    private readonly registrationTokenTtlMs: number,
  ) {}

  private requireAdmin(caller: Caller) {
    if (!caller.isAdmin)
      throw new WrennError('permission_denied', 'hosts are managed with the admin key');
  }

  async createRegistrationToken(caller: Caller): Promise<{ token: string; expiresAt: string }> {
    this.requireAdmin(caller);
    const token = newToken('wrr');
    const now = this.clock();
    const expires = now + this.registrationTokenTtlMs;
    await this.db.kysely
      .insertInto('registration_tokens')
      .values({
        id: newId(12),
        token_hash: hashSecret(token),
        created_at: now,
        expires_at: expires,
        used_at: null,
        host_id: null,
      })
      .execute();
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'host.token.create',
    });
    return { token, expiresAt: new Date(expires).toISOString() };
  }

  /** One-time: the token is consumed by a conditional update, so two agents cannot share it. */
  async register(input: {
    registrationToken: string;
    agentUrl: string;
    capacity: Capacity;
  }): Promise<{
    hostId: string;
    hostToken: string;
  }> {
    const now = this.clock();
    const hostId = newId(12);
    const hostToken = newToken('wrh');
    return this.db.kysely.transaction().execute(async (trx) => {
      const used = await trx
        .updateTable('registration_tokens')
        .set({ used_at: now, host_id: hostId })
        .where('token_hash', '=', hashSecret(input.registrationToken))
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) {
        throw new WrennError(
          'unauthenticated',
          'registration token is unknown, expired or already used',
        );
      }
      await trx
        .insertInto('hosts')
        .values({
          id: hostId,
          agent_url: input.agentUrl.replace(/\/+$/, ''),
          host_token: hostToken,
          status: 'ready',
          vcpus: input.capacity.vcpus,
          memory_mb: input.capacity.memoryMb,
          disk_mb: input.capacity.diskMb,
          vcpus_used: 0,
          memory_used_mb: 0,
          disk_used_mb: 0,
          sandboxes_running: 0,
          sandboxes_paused: 0,
          accelerator: '',
          last_heartbeat_at: now,
          created_at: now,
        })
        .execute();
      await trx
        .insertInto('audit_log')
        .values({
          team_id: null,
          actor: `host:${hostId}`,
          action: 'host.register',
          target_id: hostId,
          details: JSON.stringify({ agentUrl: input.agentUrl, capacity: input.capacity }),
          created_at: now,
        })
        .execute();
      return { hostId, hostToken };
    });
  }

  /** Verifies a host token; unknown host and wrong token look the same (401). */
  async authenticateHost(hostId: string, token: string | undefined): Promise<HostRow> {
    const row = await this.db.kysely
      .selectFrom('hosts')
      .selectAll()
      .where('id', '=', hostId)
      .executeTakeFirst();
    if (!token || !row || !secretsEqual(row.host_token, token)) {
      throw new WrennError('unauthenticated', 'unknown host or wrong host token');
    }
    return row;
  }

  async heartbeat(
    host: HostRow,
    input: { capacity: Capacity; load: HostLoadReport; accelerator?: string; agentUrl?: string },
  ): Promise<void> {
    const now = this.clock();
    await this.db.kysely
      .updateTable('hosts')
      .set({
        status: 'ready',
        vcpus: input.capacity.vcpus,
        memory_mb: input.capacity.memoryMb,
        disk_mb: input.capacity.diskMb,
        vcpus_used: input.load.vcpusUsed,
        memory_used_mb: input.load.memoryUsedMb,
        disk_used_mb: input.load.diskUsedMb,
        sandboxes_running: input.load.sandboxesRunning,
        sandboxes_paused: input.load.sandboxesPaused,
        accelerator: input.accelerator ?? host.accelerator,
        last_heartbeat_at: now,
        ...(input.agentUrl ? { agent_url: input.agentUrl.replace(/\/+$/, '') } : {}),
      })
      .where('id', '=', host.id)
      .execute();
    if (host.status !== 'ready') {
      await this.audit.record({
        teamId: null,
        actor: `host:${host.id}`,
        action: 'host.recovered',
        targetId: host.id,
      });
      this.onHostRecovered(host.id);
    }
  }

  async list(caller: Caller): Promise<HostView[]> {
    this.requireAdmin(caller);
    const rows = await this.db.kysely
      .selectFrom('hosts')
      .selectAll()
      .orderBy('created_at', 'asc')
      .execute();
    return rows.map(hostView);
  }

  async get(caller: Caller, hostId: string): Promise<HostView> {
    this.requireAdmin(caller);
    return hostView(await this.row(hostId));
  }

  async row(hostId: string): Promise<HostRow> {
    const row = await this.db.kysely
      .selectFrom('hosts')
      .selectAll()
      .where('id', '=', hostId)
      .executeTakeFirst();
    if (!row) throw new WrennError('not_found', `host '${hostId}' not found`);
    return row;
  }

  /**
   * Removes a host from the cluster. Refused while it still holds sandboxes that are not
   * stopped, because their data (paused snapshots) lives only on that host.
   */
  async delete(caller: Caller, hostId: string): Promise<void> {
    this.requireAdmin(caller);
    await this.row(hostId);
    const held = await this.db.kysely
      .selectFrom('sandboxes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('host_id', '=', hostId)
      .where('status', 'not in', ['stopped', 'error'])
      .executeTakeFirstOrThrow();
    if (Number(held.n) > 0) {
      throw new WrennError(
        'conflict',
        `host '${hostId}' still holds ${held.n} sandbox(es); kill them first`,
      );
    }
    await this.db.kysely.deleteFrom('hosts').where('id', '=', hostId).execute();
    this.agents.forget(hostId);
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'host.delete',
      targetId: hostId,
    });
  }
}

export function hostView(r: HostRow): HostView {
  return {
    hostId: r.id,
    agentUrl: r.agent_url,
    status: r.status,
    capacity: { vcpus: r.vcpus, memoryMb: Number(r.memory_mb), diskMb: Number(r.disk_mb) },
    load: {
      vcpusUsed: r.vcpus_used,
      memoryUsedMb: Number(r.memory_used_mb),
      diskUsedMb: Number(r.disk_used_mb),
      sandboxesRunning: r.sandboxes_running,
      sandboxesPaused: r.sandboxes_paused,
    },
    accelerator: r.accelerator,
    lastHeartbeatAt: new Date(Number(r.last_heartbeat_at)).toISOString(),
    createdAt: new Date(Number(r.created_at)).toISOString(),
  };
}
