import { SYSTEM_TEAM, WrennError } from '@wrenn/common';
import { type AgentPool, fromAgentError } from '../agents/pool.ts';
import type { Db } from '../db/database.ts';
import type { TemplateRow } from '../db/schema.ts';
import type { AuditLog } from './audit.ts';
import type { Caller } from './keys.ts';

export interface TemplateView {
  templateId: string;
  teamId: string;
  kind: 'builtin' | 'snapshot';
  /** Snapshot templates live on one host; built-ins on every host. */
  hostId: string | null;
  sourceSandboxId: string | null;
  vcpus: number;
  memoryMb: number;
  diskMb: number;
  sizeBytes: number;
  createdAt: string;
}

/** Images every agent builds itself (packages/images); `base` is what E2B users expect. */
export const BUILTIN_TEMPLATES = ['minimal', 'base'] as const;

export class TemplateService {
  constructor(
    private readonly db: Db,
    private readonly agents: AgentPool,
    private readonly audit: AuditLog,
    private readonly clock: () => number,
    private readonly defaults: { vcpus: number; memoryMb: number; diskMb: number },
  ) {}

  /** Idempotent: run at every start so a fresh database knows the built-in templates. */
  async ensureBuiltins(): Promise<void> {
    for (const id of BUILTIN_TEMPLATES) {
      await this.db.kysely
        .insertInto('templates')
        .values({
          team_id: SYSTEM_TEAM,
          id,
          kind: 'builtin',
          host_id: null,
          source_sandbox_id: null,
          vcpus: this.defaults.vcpus,
          memory_mb: this.defaults.memoryMb,
          disk_mb: this.defaults.diskMb,
          size_bytes: 0,
          created_at: this.clock(),
        })
        .onConflict((oc) => oc.columns(['team_id', 'id']).doNothing())
        .execute();
    }
  }

  /** The caller's own template wins over a public one of the same name. */
  async resolve(teamId: string, templateId: string): Promise<TemplateRow | undefined> {
    const rows = await this.db.kysely
      .selectFrom('templates')
      .selectAll()
      .where('id', '=', templateId)
      .where('team_id', 'in', [teamId, SYSTEM_TEAM])
      .execute();
    return rows.find((r) => r.team_id === teamId) ?? rows[0];
  }

  async list(caller: Caller): Promise<TemplateView[]> {
    const rows = await this.db.kysely
      .selectFrom('templates')
      .selectAll()
      .where('team_id', 'in', [caller.teamId, SYSTEM_TEAM])
      .orderBy('team_id')
      .orderBy('id')
      .execute();
    return rows.map(templateView);
  }

  async get(caller: Caller, templateId: string): Promise<TemplateView> {
    const row = await this.resolve(caller.teamId, templateId);
    if (!row) throw new WrennError('not_found', `template '${templateId}' not found`);
    return templateView(row);
  }

  /** Only the owning team deletes; public templates are visible to all but owned by none. */
  async delete(caller: Caller, templateId: string): Promise<void> {
    const row = await this.db.kysely
      .selectFrom('templates')
      .selectAll()
      .where('team_id', '=', caller.teamId)
      .where('id', '=', templateId)
      .executeTakeFirst();
    if (!row) {
      const pub = await this.resolve(caller.teamId, templateId);
      if (pub)
        throw new WrennError(
          'permission_denied',
          `template '${templateId}' is built in and cannot be deleted`,
        );
      throw new WrennError('not_found', `template '${templateId}' not found`);
    }
    const inUse = await this.db.kysely
      .selectFrom('sandboxes')
      .select('id')
      .where('template_team_id', '=', caller.teamId)
      .where('template_id', '=', templateId)
      .where('status', 'not in', ['stopped', 'error'])
      .executeTakeFirst();
    if (inUse)
      throw new WrennError('conflict', `template '${templateId}' is used by sandbox '${inUse.id}'`);
    if (row.host_id) {
      const host = await this.db.kysely
        .selectFrom('hosts')
        .selectAll()
        .where('id', '=', row.host_id)
        .executeTakeFirst();
      if (host) {
        try {
          await this.agents.for(host).deleteTemplate({ teamId: caller.teamId, templateId });
        } catch (e) {
          const err = fromAgentError(e, `delete template on host ${host.id}`);
          if (err.code !== 'not_found') throw err;
        }
      }
    }
    await this.db.kysely
      .deleteFrom('templates')
      .where('team_id', '=', caller.teamId)
      .where('id', '=', templateId)
      .execute();
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'template.delete',
      targetId: templateId,
    });
  }

  async insertSnapshot(row: TemplateRow): Promise<TemplateView> {
    await this.db.kysely.insertInto('templates').values(row).execute();
    return templateView(row);
  }
}

export function templateView(r: TemplateRow): TemplateView {
  return {
    templateId: r.id,
    teamId: r.team_id,
    kind: r.kind,
    hostId: r.host_id,
    sourceSandboxId: r.source_sandbox_id,
    vcpus: r.vcpus,
    memoryMb: r.memory_mb,
    diskMb: r.disk_mb,
    sizeBytes: Number(r.size_bytes),
    createdAt: new Date(Number(r.created_at)).toISOString(),
  };
}
