import type { Logger } from '@wrenn/common';
import type { agentv1 } from '@wrenn/proto';
import type { AgentPool } from '../agents/pool.ts';
import type { ControlPlaneConfig } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { HostRow, SandboxRow, SandboxStatus } from '../db/schema.ts';
import type { AuditLog } from '../services/audit.ts';
import { rowFieldsFromAgent } from '../services/sandbox-view.ts';

const TRANSIENT: SandboxStatus[] = ['starting', 'pausing', 'resuming', 'stopping'];

export interface ReconcileReport {
  hostsMarkedUnreachable: string[];
  /** sandbox id → `from→to` */
  changed: Record<string, string>;
  destroyed: string[];
  errors: string[];
}

/**
 * Makes the DB agree with the agents. The agent's in-memory list is the truth for what runs
 * on a host; the DB is the truth for what users asked for. Each pass is idempotent:
 *  1. hosts without a heartbeat inside the window → unreachable, their sandboxes → missing;
 *  2. for each ready host, every DB row is compared with the agent's list:
 *     agent running → row running; agent paused → row paused (auto-pause, or re-adopted);
 *     agent lacks it → row stopped; a row in a transient status is left alone until its
 *     grace period ends; the agent holding a sandbox the DB calls stopped → destroyed + audited.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReconcileReport> | undefined;

  constructor(
    private readonly db: Db,
    private readonly agents: AgentPool,
    private readonly audit: AuditLog,
    private readonly config: ControlPlaneConfig,
    private readonly clock: () => number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = () => {
      this.runOnce()
        .catch((e) => this.log.error({ err: String(e) }, 'reconcile pass failed'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.config.reconcileIntervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, this.config.reconcileIntervalMs).unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  /** One pass; overlapping calls share the pass in flight. */
  runOnce(): Promise<ReconcileReport> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      hostsMarkedUnreachable: [],
      changed: {},
      destroyed: [],
      errors: [],
    };
    await this.markUnreachable(report);
    const hosts = await this.db.kysely
      .selectFrom('hosts')
      .selectAll()
      .where('status', '=', 'ready')
      .execute();
    for (const host of hosts) {
      try {
        await this.reconcileHost(host, report);
      } catch (e) {
        report.errors.push(`${host.id}: ${String(e)}`);
        this.log.warn({ hostId: host.id, err: String(e) }, 'reconcile: agent list failed');
      }
    }
    return report;
  }

  private async markUnreachable(report: ReconcileReport) {
    const cutoff = this.clock() - this.config.heartbeatTimeoutMs;
    const stale = await this.db.kysely
      .selectFrom('hosts')
      .select('id')
      .where('status', '=', 'ready')
      .where('last_heartbeat_at', '<', cutoff)
      .execute();
    for (const { id } of stale) {
      const r = await this.db.kysely
        .updateTable('hosts')
        .set({ status: 'unreachable' })
        .where('id', '=', id)
        .where('status', '=', 'ready')
        .where('last_heartbeat_at', '<', cutoff)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) continue; // heartbeat raced in, or another CP did it
      const lost = await this.db.kysely
        .selectFrom('sandboxes')
        .select(['id', 'status', 'team_id'])
        .where('host_id', '=', id)
        .where('status', 'not in', ['stopped', 'error', 'missing'])
        .execute();
      await this.db.kysely
        .updateTable('sandboxes')
        .set({ status: 'missing', status_changed_at: this.clock() })
        .where('host_id', '=', id)
        .where('status', 'not in', ['stopped', 'error', 'missing'])
        .execute();
      for (const s of lost) report.changed[s.id] = `${s.status}→missing`;
      report.hostsMarkedUnreachable.push(id);
      await this.audit.record({
        teamId: null,
        actor: 'system',
        action: 'host.unreachable',
        targetId: id,
        details: { sandboxes: lost.map((s) => s.id) },
      });
    }
  }

  async reconcileHost(host: HostRow, report: ReconcileReport): Promise<void> {
    const res = await this.agents.for(host).list({});
    const onAgent = new Map<string, agentv1.SandboxInfo>(
      res.sandboxes.map((s) => [s.sandboxId, s]),
    );
    const autoPaused = new Set(res.autoPausedIds);
    const rows = await this.db.kysely
      .selectFrom('sandboxes')
      .selectAll()
      .where('host_id', '=', host.id)
      .where('status', '!=', 'stopped')
      .execute();
    const now = this.clock();
    const known = new Set<string>();
    for (const row of rows) {
      known.add(row.id);
      const info = onAgent.get(row.id);
      const inGrace =
        TRANSIENT.includes(row.status) &&
        now - Number(row.status_changed_at) < this.config.transientGraceMs;
      if (inGrace) continue;
      if (!info) {
        // Gone from the agent (killed by its TTL reaper, or lost with its disk).
        await this.setStatus(row, 'stopped', report, { end_at: null });
        continue;
      }
      const fields = rowFieldsFromAgent(info);
      // The agent is mid-way through a step of its own (the TTL reaper pausing): wait for
      // where it lands. Copying its transient status would put the row in grace, and the
      // settled report that follows would be ignored for transientGraceMs.
      if (TRANSIENT.includes(fields.status) && fields.status !== row.status) continue;
      if (fields.status === row.status && Number(row.end_at ?? 0) === Number(fields.end_at ?? 0))
        continue;
      if (fields.status === row.status) {
        await this.db.kysely
          .updateTable('sandboxes')
          .set({ end_at: fields.end_at })
          .where('id', '=', row.id)
          .execute();
        continue;
      }
      await this.setStatus(
        row,
        fields.status,
        report,
        {
          end_at: fields.end_at,
          started_at: fields.started_at ?? row.started_at,
          error: fields.error,
        },
        autoPaused.has(row.id) ? 'auto-paused' : undefined,
      );
    }
    // Sandboxes the DB calls stopped but the agent still holds: destroy (the user killed
    // them while the host was unreachable, or a create was abandoned).
    const stoppedIds = [...onAgent.keys()].filter((id) => !known.has(id));
    if (stoppedIds.length) {
      const stopped = await this.db.kysely
        .selectFrom('sandboxes')
        .select(['id', 'team_id', 'status_changed_at'])
        .where('id', 'in', stoppedIds)
        .where('status', '=', 'stopped')
        .execute();
      for (const s of stopped) {
        try {
          await this.agents.for(host).destroy({ sandboxId: s.id });
          report.destroyed.push(s.id);
          await this.audit.record({
            teamId: s.team_id,
            actor: 'system',
            action: 'sandbox.destroy.orphan',
            targetId: s.id,
            details: { hostId: host.id, agentStatus: onAgent.get(s.id)?.status },
          });
        } catch (e) {
          report.errors.push(`destroy ${s.id}: ${String(e)}`);
        }
      }
    }
  }

  private async setStatus(
    row: SandboxRow,
    to: SandboxStatus,
    report: ReconcileReport,
    extra: Partial<SandboxRow>,
    reason?: string,
  ) {
    // Conditional on the status we read: a user action that raced in wins.
    const r = await this.db.kysely
      .updateTable('sandboxes')
      .set({ ...extra, status: to, status_changed_at: this.clock() })
      .where('id', '=', row.id)
      .where('status', '=', row.status)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return;
    report.changed[row.id] = `${row.status}→${to}`;
    await this.audit.record({
      teamId: row.team_id,
      actor: 'system',
      action: 'sandbox.reconcile',
      targetId: row.id,
      details: { from: row.status, to, ...(reason ? { reason } : {}) },
    });
  }
}
