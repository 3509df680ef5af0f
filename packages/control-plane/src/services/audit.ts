import type { Db } from '../db/database.ts';
import type { AuditRow } from '../db/schema.ts';

export interface AuditEntry {
  teamId: string | null;
  /** API key id, `host:<id>`, or `system` for the reconciler. */
  actor: string;
  action: string;
  targetId?: string | null;
  details?: Record<string, unknown>;
}

export interface AuditView {
  id: number;
  teamId: string | null;
  actor: string;
  action: string;
  targetId: string | null;
  details: Record<string, unknown>;
  createdAt: string;
}

/** Append-only record of who changed what; read back newest first. */
export class AuditLog {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number,
  ) {}

  async record(e: AuditEntry): Promise<void> {
    await this.db.kysely
      .insertInto('audit_log')
      .values({
        team_id: e.teamId,
        actor: e.actor,
        action: e.action,
        target_id: e.targetId ?? null,
        details: JSON.stringify(e.details ?? {}),
        created_at: this.clock(),
      })
      .execute();
  }

  /** `teamId` null = every team (admin). `before` pages backwards by id. */
  async list(opts: {
    teamId: string | null;
    limit: number;
    before?: number;
    action?: string;
  }): Promise<{
    entries: AuditView[];
    nextToken: string | null;
  }> {
    let q = this.db.kysely
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('id', 'desc')
      .limit(opts.limit + 1);
    if (opts.teamId !== null) q = q.where('team_id', '=', opts.teamId);
    if (opts.before !== undefined) q = q.where('id', '<', opts.before);
    if (opts.action) q = q.where('action', '=', opts.action);
    const rows = await q.execute();
    const page = rows.slice(0, opts.limit);
    return {
      entries: page.map(auditView),
      nextToken: rows.length > opts.limit ? String(page[page.length - 1]!.id) : null,
    };
  }
}

function auditView(r: AuditRow): AuditView {
  return {
    id: Number(r.id),
    teamId: r.team_id,
    actor: r.actor,
    action: r.action,
    targetId: r.target_id,
    details: JSON.parse(r.details) as Record<string, unknown>,
    createdAt: new Date(Number(r.created_at)).toISOString(),
  };
}
