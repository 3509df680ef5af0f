import { timingSafeEqual } from 'node:crypto';
import { isValidId, type Logger, newId, SYSTEM_TEAM, WrennError } from '@wrenn/common';
import { fileSignature } from '@wrenn/envd/auth.ts';
import { agentv1 } from '@wrenn/proto';
import { sql, type Transaction } from 'kysely';
import { type AgentPool, fromAgentError, HOST_TOKEN_HEADER } from '../agents/pool.ts';
import { newToken } from '../auth/secrets.ts';
import type { ControlPlaneConfig } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { Database, HostRow, SandboxRow, SandboxStatus } from '../db/schema.ts';
import {
  type EnvdTarget,
  type ExecResult,
  execCommand,
  readFile,
  writeFile,
} from '../envd/client.ts';
import type { SignedFiles } from '../gateway/signed-url.ts';
import {
  chooseHost,
  type HostLoad,
  maxResources,
  type Resources,
  scarcestAfter,
} from '../scheduler/placement.ts';
import type { AuditLog } from './audit.ts';
import { LIVE_STATUSES } from './hosts.ts';
import type { Caller } from './keys.ts';
import {
  decodeCursor,
  encodeCursor,
  rowFieldsFromAgent,
  type SandboxView,
  sandboxView,
} from './sandbox-view.ts';
import type { TemplateService, TemplateView } from './templates.ts';

export interface CreateSandboxInput {
  templateId: string;
  vcpus?: number;
  memoryMb?: number;
  diskMb?: number;
  /** Seconds until the lifecycle's onTimeout action; 0 = never. */
  timeoutSeconds?: number;
  lifecycle?: { onTimeout?: 'kill' | 'pause'; autoResume?: boolean };
  metadata?: Record<string, string>;
  envVars?: Record<string, string>;
}

export interface ListSandboxesInput {
  metadata?: Record<string, string>;
  statuses?: SandboxStatus[];
  limit: number;
  nextToken?: string;
}

export interface ExecInput {
  /** Run through `/bin/sh -c`. Exactly one of `cmd` and `argv`. */
  cmd?: string;
  argv?: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs?: number;
}

export interface ExecOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** `base64` when the bytes are not valid UTF-8 (binary output). */
  stdoutEncoding: 'utf8' | 'base64';
  stderrEncoding: 'utf8' | 'base64';
  truncated: boolean;
  error?: string;
}

/** Statuses a user may list and act on; `stopped` rows are history. */
const DEFAULT_LIST_STATUSES: SandboxStatus[] = [
  'starting',
  'running',
  'pausing',
  'paused',
  'resuming',
  'stopping',
  'missing',
  'error',
];
const MAX_EXEC_OUTPUT = 16 << 20;
const ACTIVITY_RESOLUTION_MS = 5_000;
const SCHEDULER_LOCK = 0x5752454e; // "WREN": one advisory lock for placement on PostgreSQL

/**
 * Sandboxes: the lifecycle verbs shared by the native `/v1` routes, the E2B routes and
 * the gateway. INVARIANT: every DB row names the host that holds the sandbox (running VM or
 * paused snapshot); only a successful agent call moves a row into running or paused.
 */
export class SandboxService {
  private readonly resuming = new Map<string, Promise<SandboxRow>>();
  private readonly lastTouched = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly agents: AgentPool,
    private readonly templates: TemplateService,
    private readonly audit: AuditLog,
    private readonly config: ControlPlaneConfig,
    private readonly clock: () => number,
    private readonly log: Logger,
  ) {}

  // ---- create / read ------------------------------------------------------------------

  async create(caller: Caller, input: CreateSandboxInput): Promise<SandboxView> {
    const tpl = await this.templates.resolve(caller.teamId, input.templateId);
    if (!tpl) throw new WrennError('invalid_argument', `unknown template '${input.templateId}'`);
    const req: Resources = {
      vcpus: input.vcpus ?? tpl.vcpus,
      memoryMb: input.memoryMb ?? tpl.memory_mb,
      diskMb: input.diskMb ?? tpl.disk_mb,
    };
    const limits = this.config.sandboxLimits;
    if (req.vcpus > limits.vcpus || req.memoryMb > limits.memoryMb || req.diskMb > limits.diskMb) {
      throw new WrennError(
        'invalid_argument',
        `requested ${req.vcpus} vCPU / ${req.memoryMb} MiB / ${req.diskMb} MiB disk exceeds the per-sandbox limit of ${limits.vcpus} vCPU / ${limits.memoryMb} MiB / ${limits.diskMb} MiB`,
      );
    }
    const timeoutSeconds = input.timeoutSeconds ?? this.config.sandboxDefaults.timeoutSeconds;
    const onTimeout = input.lifecycle?.onTimeout ?? 'kill';
    const now = this.clock();
    const row: SandboxRow = {
      id: newId(),
      team_id: caller.teamId,
      host_id: '',
      template_id: tpl.id,
      template_team_id: tpl.team_id,
      status: 'starting',
      vcpus: req.vcpus,
      memory_mb: req.memoryMb,
      disk_mb: req.diskMb,
      timeout_seconds: timeoutSeconds,
      on_timeout: onTimeout,
      auto_resume: input.lifecycle?.autoResume ? 1 : 0,
      metadata: JSON.stringify(input.metadata ?? {}),
      envd_access_token: newToken('wre'),
      error: null,
      created_at: now,
      started_at: null,
      end_at: null,
      last_active_at: now,
      status_changed_at: now,
    };
    const host = await this.place(row, req, tpl.host_id);
    try {
      const res = await this.agents.for(host).create({
        sandboxId: row.id,
        teamId: caller.teamId,
        templateId: tpl.id,
        vcpus: req.vcpus,
        memoryMb: req.memoryMb,
        diskMb: req.diskMb,
        timeoutSeconds,
        timeoutAction:
          onTimeout === 'pause' ? agentv1.TimeoutAction.PAUSE : agentv1.TimeoutAction.KILL,
        envVars: input.envVars ?? {},
        metadata: input.metadata ?? {},
        envdAccessToken: row.envd_access_token,
      });
      const fields = res.sandbox ? rowFieldsFromAgent(res.sandbox) : { status: 'running' as const };
      Object.assign(row, fields, { status_changed_at: this.clock() });
      await this.update(row.id, { ...fields, status_changed_at: row.status_changed_at });
    } catch (e) {
      const err = fromAgentError(e, `create on host ${host.id}`);
      await this.update(row.id, {
        status: 'stopped',
        error: err.message,
        status_changed_at: this.clock(),
      });
      await this.audit.record({
        teamId: caller.teamId,
        actor: caller.keyId,
        action: 'sandbox.create.failed',
        targetId: row.id,
        details: { hostId: host.id, error: err.message },
      });
      throw err;
    }
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'sandbox.create',
      targetId: row.id,
      details: { hostId: host.id, templateId: tpl.id, ...req },
    });
    return sandboxView(row);
  }

  async get(caller: Caller, id: string): Promise<SandboxView> {
    return sandboxView(await this.rowFor(caller, id));
  }

  async list(
    caller: Caller,
    input: ListSandboxesInput,
  ): Promise<{ sandboxes: SandboxView[]; nextToken: string | null }> {
    let q = this.db.kysely
      .selectFrom('sandboxes')
      .selectAll()
      .where('team_id', '=', caller.teamId)
      .where('status', 'in', input.statuses?.length ? input.statuses : DEFAULT_LIST_STATUSES);
    for (const [key, value] of Object.entries(input.metadata ?? {})) {
      q = q.where(({ exists, selectFrom }) =>
        exists(
          selectFrom('sandbox_metadata as m')
            .select('m.sandbox_id')
            .whereRef('m.sandbox_id', '=', 'sandboxes.id')
            .where('m.key', '=', key)
            .where('m.value', '=', value),
        ),
      );
    }
    if (input.nextToken) {
      const c = decodeCursor(input.nextToken);
      if (!c)
        throw new WrennError('invalid_argument', 'nextToken is not a token this API returned');
      q = q.where((eb) =>
        eb.or([
          eb('created_at', '<', c.createdAt),
          eb.and([eb('created_at', '=', c.createdAt), eb('id', '<', c.id)]),
        ]),
      );
    }
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(input.limit + 1)
      .execute();
    const page = rows.slice(0, input.limit);
    const last = page[page.length - 1];
    return {
      sandboxes: page.map(sandboxView),
      nextToken:
        rows.length > input.limit && last ? encodeCursor(Number(last.created_at), last.id) : null,
    };
  }

  // ---- lifecycle verbs ----------------------------------------------------------------

  async kill(caller: Caller, id: string): Promise<void> {
    const row = await this.rowFor(caller, id);
    if (row.status === 'stopped')
      throw new WrennError('not_found', `sandbox '${id}' not found (already stopped)`);
    const host = await this.hostRow(row.host_id);
    await this.update(id, { status: 'stopping', status_changed_at: this.clock() });
    let deferred = false;
    if (host) {
      try {
        await this.agents.for(host).destroy({ sandboxId: id });
      } catch (e) {
        const err = fromAgentError(e, `destroy on host ${host.id}`);
        if (err.code === 'unavailable' || err.code === 'deadline_exceeded') {
          // The host is down: the row says stopped, and the reconciler destroys the VM
          // when the host comes back (agent has it, DB says stopped).
          deferred = true;
        } else if (err.code !== 'not_found') {
          await this.update(id, { status: row.status, status_changed_at: this.clock() });
          throw err;
        }
      }
    }
    await this.update(id, { status: 'stopped', end_at: null, status_changed_at: this.clock() });
    if (host && !deferred && LIVE_STATUSES.includes(row.status as never))
      await this.releaseReported(host.id, row);
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'sandbox.kill',
      targetId: id,
      details: { deferred },
    });
  }

  async pause(caller: Caller, id: string): Promise<SandboxView> {
    const row = await this.rowFor(caller, id);
    if (row.status === 'paused')
      throw new WrennError('conflict', `sandbox '${id}' is already paused`);
    if (row.status !== 'running')
      throw new WrennError(
        'conflict',
        `sandbox '${id}' is ${row.status}; only a running sandbox can be paused`,
      );
    if (!(await this.transition(id, 'running', 'pausing'))) {
      throw new WrennError('conflict', `sandbox '${id}' changed state while pausing; try again`);
    }
    const host = await this.requireHost(row.host_id, 'pause');
    try {
      const res = await this.agents.for(host).pause({ sandboxId: id });
      const fields = res.sandbox ? rowFieldsFromAgent(res.sandbox) : { status: 'paused' as const };
      await this.update(id, { ...fields, end_at: null, status_changed_at: this.clock() });
      await this.releaseReported(host.id, row);
    } catch (e) {
      // The agent rolls a failed pause back to running while the VM still exists; if it did
      // not, the reconciler corrects the row from the agent's list.
      await this.update(id, { status: 'running', status_changed_at: this.clock() });
      throw fromAgentError(e, `pause on host ${host.id}`);
    }
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'sandbox.pause',
      targetId: id,
    });
    return sandboxView(await this.rowFor(caller, id));
  }

  /** Native resume: a running sandbox is a conflict. */
  async resume(
    caller: Caller,
    id: string,
    opts: { timeoutSeconds?: number } = {},
  ): Promise<SandboxView> {
    const row = await this.rowFor(caller, id);
    if (row.status === 'running')
      throw new WrennError('conflict', `sandbox '${id}' is already running`);
    const resumed = await this.resumeRow(row, opts.timeoutSeconds, caller.keyId);
    return sandboxView(resumed);
  }

  /**
   * E2B's connect: resume when paused, otherwise keep running; the timeout only ever
   * extends end-at, never shortens it.
   */
  async connect(
    caller: Caller,
    id: string,
    opts: { timeoutSeconds?: number } = {},
  ): Promise<{ sandbox: SandboxView; resumed: boolean }> {
    const row = await this.rowFor(caller, id);
    if (row.status === 'paused' || row.status === 'resuming') {
      return {
        sandbox: sandboxView(await this.resumeRow(row, opts.timeoutSeconds, caller.keyId)),
        resumed: true,
      };
    }
    if (row.status !== 'running')
      throw new WrennError('not_found', `sandbox '${id}' is ${row.status}`);
    if (opts.timeoutSeconds !== undefined) {
      const wanted = this.clock() + opts.timeoutSeconds * 1000;
      if (row.end_at !== null && wanted > Number(row.end_at)) {
        return { sandbox: await this.setTimeout(caller, id, opts.timeoutSeconds), resumed: false };
      }
    }
    return { sandbox: sandboxView(row), resumed: false };
  }

  async setTimeout(caller: Caller, id: string, timeoutSeconds: number): Promise<SandboxView> {
    const row = await this.rowFor(caller, id);
    if (row.status === 'paused') {
      // Applies from the next resume: a paused sandbox's clock is not running.
      await this.update(id, { timeout_seconds: timeoutSeconds });
    } else if (row.status === 'running') {
      const host = await this.requireHost(row.host_id, 'set the timeout');
      try {
        const res = await this.agents.for(host).setTimeout({ sandboxId: id, timeoutSeconds });
        const endAt = res.sandbox?.endAtMs
          ? Number(res.sandbox.endAtMs)
          : timeoutSeconds
            ? this.clock() + timeoutSeconds * 1000
            : null;
        await this.update(id, { timeout_seconds: timeoutSeconds, end_at: endAt });
      } catch (e) {
        throw fromAgentError(e, `set timeout on host ${host.id}`);
      }
    } else {
      throw new WrennError('conflict', `sandbox '${id}' is ${row.status}`);
    }
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'sandbox.timeout',
      targetId: id,
      details: { timeoutSeconds },
    });
    return sandboxView(await this.rowFor(caller, id));
  }

  // ---- data plane (through the agent proxy to envd) ------------------------------------

  async exec(caller: Caller, id: string, input: ExecInput): Promise<ExecOutput> {
    const argv = input.argv ?? ['/bin/sh', '-c', input.cmd!];
    const target = await this.envdTargetFor(await this.rowFor(caller, id), 'conflict');
    const r: ExecResult = await execCommand(target, {
      argv,
      env: input.env,
      cwd: input.cwd,
      user: input.user,
      timeoutMs: input.timeoutMs ?? 60_000,
      maxOutputBytes: MAX_EXEC_OUTPUT,
    });
    const out = encodeOutput(r.stdout);
    const err = encodeOutput(r.stderr);
    return {
      exitCode: r.exitCode,
      stdout: out.text,
      stderr: err.text,
      stdoutEncoding: out.encoding,
      stderrEncoding: err.encoding,
      truncated: r.truncated,
      ...(r.error ? { error: r.error } : {}),
    };
  }

  async readFile(caller: Caller, id: string, path: string, user?: string): Promise<Response> {
    return readFile(
      await this.envdTargetFor(await this.rowFor(caller, id), 'conflict'),
      path,
      user,
    );
  }

  async writeFile(
    caller: Caller,
    id: string,
    path: string,
    data: Uint8Array,
    user?: string,
  ): Promise<void> {
    await writeFile(
      await this.envdTargetFor(await this.rowFor(caller, id), 'conflict'),
      path,
      data,
      user,
    );
  }

  async metrics(caller: Caller, id: string, sinceMs = 0) {
    const row = await this.rowFor(caller, id);
    const host = await this.hostRow(row.host_id);
    if (row.status === 'running' && host?.status === 'ready') {
      // Points are copied into the DB so history outlives the agent's buffer and restarts.
      const last = await this.db.kysely
        .selectFrom('metric_points')
        .select((eb) => eb.fn.max('ts').as('ts'))
        .where('sandbox_id', '=', id)
        .executeTakeFirst();
      try {
        const res = await this.agents
          .for(host)
          .getMetrics({ sandboxId: id, sinceMs: BigInt(Number(last?.ts ?? 0) + 1) });
        if (res.points.length) {
          await this.db.kysely
            .insertInto('metric_points')
            .values(
              res.points.map((p) => ({
                sandbox_id: id,
                ts: Number(p.timestampMs),
                cpu_used_pct: p.cpuUsedPct,
                cpu_count: p.cpuCount,
                mem_used_bytes: Number(p.memUsedBytes),
                mem_total_bytes: Number(p.memTotalBytes),
                disk_used_bytes: Number(p.diskUsedBytes),
                disk_total_bytes: Number(p.diskTotalBytes),
              })),
            )
            .onConflict((oc) => oc.columns(['sandbox_id', 'ts']).doNothing())
            .execute();
        }
      } catch (e) {
        this.log.warn(
          { sandboxId: id, err: String(e) },
          'metrics: agent unreachable, serving stored points',
        );
      }
    }
    const points = await this.db.kysely
      .selectFrom('metric_points')
      .selectAll()
      .where('sandbox_id', '=', id)
      .where('ts', '>=', sinceMs)
      .orderBy('ts', 'asc')
      .limit(10_000)
      .execute();
    return points.map((p) => ({
      timestamp: new Date(Number(p.ts)).toISOString(),
      cpuUsedPct: p.cpu_used_pct,
      cpuCount: p.cpu_count,
      memUsedBytes: Number(p.mem_used_bytes),
      memTotalBytes: Number(p.mem_total_bytes),
      diskUsedBytes: Number(p.disk_used_bytes),
      diskTotalBytes: Number(p.disk_total_bytes),
    }));
  }

  /** Snapshot a running sandbox into a new template of the caller's team (it keeps running). */
  async snapshot(caller: Caller, id: string, templateId: string): Promise<TemplateView> {
    if (!isValidId(templateId))
      throw new WrennError('invalid_argument', `invalid template id '${templateId}'`);
    const row = await this.rowFor(caller, id);
    if (row.status !== 'running')
      throw new WrennError(
        'conflict',
        `sandbox '${id}' is ${row.status}; only a running sandbox can be snapshotted`,
      );
    const existing = await this.templates.resolve(caller.teamId, templateId);
    if (existing?.team_id === caller.teamId || (existing && existing.team_id === SYSTEM_TEAM)) {
      throw new WrennError('conflict', `template '${templateId}' already exists`);
    }
    const host = await this.requireHost(row.host_id, 'snapshot');
    let info: agentv1.TemplateInfo | undefined;
    try {
      info = (
        await this.agents
          .for(host)
          .createTemplateSnapshot({ sandboxId: id, teamId: caller.teamId, templateId })
      ).template;
    } catch (e) {
      throw fromAgentError(e, `snapshot on host ${host.id}`);
    }
    const view = await this.templates.insertSnapshot({
      team_id: caller.teamId,
      id: templateId,
      kind: 'snapshot',
      host_id: host.id,
      source_sandbox_id: id,
      vcpus: info?.vcpus || row.vcpus,
      memory_mb: info?.memoryMb || row.memory_mb,
      disk_mb: row.disk_mb,
      size_bytes: Number(info?.sizeBytes ?? 0),
      created_at: this.clock(),
    });
    await this.audit.record({
      teamId: caller.teamId,
      actor: caller.keyId,
      action: 'template.snapshot',
      targetId: templateId,
      details: { sandboxId: id },
    });
    return view;
  }

  // ---- gateway ------------------------------------------------------------------------

  /**
   * Where gateway traffic for `<id>:<port>` goes. No API key here: envd checks its own
   * access token. Unknown, stopped or paused (without auto-resume) → 502, per the E2B SDK,
   * which reads a 502 as "sandbox not running".
   */
  async gatewayTarget(
    id: string,
    port: number,
  ): Promise<{ url: string; headers: Record<string, string> }> {
    if (!isValidId(id)) throw new WrennError('bad_gateway', `sandbox '${id}' not found`);
    const row = await this.db.kysely
      .selectFrom('sandboxes')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || row.status === 'stopped')
      throw new WrennError('bad_gateway', `sandbox '${id}' not found`);
    const target = await this.envdTargetFor(row, 'bad_gateway', port);
    return {
      url: target.baseUrl,
      headers: { [HOST_TOKEN_HEADER]: target.headers[HOST_TOKEN_HEADER]! },
    };
  }

  /**
   * The sandbox whose envd token signed a `/files` URL, among those traffic can reach. The
   * gateway routes on it; envd checks the signature (and its expiry) again.
   */
  async findBySignature(signed: SignedFiles): Promise<string | undefined> {
    if (signed.expiration !== undefined && signed.expiration < Math.floor(Date.now() / 1000))
      return undefined;
    const rows = await this.db.kysely
      .selectFrom('sandboxes')
      .select(['id', 'envd_access_token'])
      .where('status', 'in', ['running', 'paused'])
      .where('envd_access_token', '!=', '')
      .execute();
    const want = Buffer.from(signed.signature);
    for (const row of rows) {
      const got = Buffer.from(fileSignature({ ...signed, token: row.envd_access_token }));
      if (got.length === want.length && timingSafeEqual(got, want)) return row.id;
    }
    return undefined;
  }

  /** Running (or auto-resumed) sandbox → proxy base URL on its agent. */
  private async envdTargetFor(
    row: SandboxRow,
    notRunning: 'conflict' | 'bad_gateway',
    port = this.config.envdPort,
  ): Promise<EnvdTarget> {
    let current = row;
    if (current.status === 'paused' && current.auto_resume === 1) {
      current = await this.resumeRow(current, undefined, 'gateway');
    }
    if (current.status !== 'running') {
      throw new WrennError(
        notRunning,
        `sandbox '${row.id}' is ${current.status}${current.status === 'paused' ? '; resume it first' : ''}`,
      );
    }
    const host = await this.hostRow(current.host_id);
    if (!host || host.status !== 'ready') {
      throw new WrennError(
        notRunning === 'conflict' ? 'unavailable' : 'bad_gateway',
        `host of sandbox '${row.id}' is unreachable`,
      );
    }
    this.touch(current.id);
    return {
      baseUrl: `${host.agent_url}/proxy/${current.id}/${port}`,
      headers: {
        [HOST_TOKEN_HEADER]: host.host_token,
        'x-access-token': current.envd_access_token,
      },
    };
  }

  /**
   * The host's reported use lags by up to one heartbeat; placement takes max(reserved,
   * reported), so a pause or kill followed at once by a resume or create would see the freed
   * CPU/RAM still used (503 "no room" on a full host). Take what was freed off the reported
   * figure now; the next heartbeat replaces it with the agent's truth.
   */
  private async releaseReported(hostId: string, row: SandboxRow) {
    await this.db.kysely
      .updateTable('hosts')
      .set((eb) => ({
        // CASE, not max()/greatest(): one spelling for SQLite and PostgreSQL.
        vcpus_used: sql<number>`case when ${eb.ref('vcpus_used')} > ${row.vcpus} then ${eb.ref('vcpus_used')} - ${row.vcpus} else 0 end`,
        memory_used_mb: sql<number>`case when ${eb.ref('memory_used_mb')} > ${row.memory_mb} then ${eb.ref('memory_used_mb')} - ${row.memory_mb} else 0 end`,
      }))
      .where('id', '=', hostId)
      .execute();
  }

  private touch(id: string) {
    const now = this.clock();
    if (now - (this.lastTouched.get(id) ?? 0) < ACTIVITY_RESOLUTION_MS) return;
    this.lastTouched.set(id, now);
    this.update(id, { last_active_at: now }).catch((e) =>
      this.log.warn({ id, err: String(e) }, 'last_active update failed'),
    );
  }

  // ---- internals ----------------------------------------------------------------------

  /**
   * Resumes on the host holding the snapshot, after admission control on that host.
   * Concurrent callers in this process share one resume.
   */
  private resumeRow(
    row: SandboxRow,
    timeoutSeconds: number | undefined,
    actor: string,
  ): Promise<SandboxRow> {
    const inflight = this.resuming.get(row.id);
    if (inflight) return inflight;
    const p = this.doResume(row, timeoutSeconds, actor).finally(() => this.resuming.delete(row.id));
    this.resuming.set(row.id, p);
    return p;
  }

  private async doResume(
    row: SandboxRow,
    timeoutSeconds: number | undefined,
    actor: string,
  ): Promise<SandboxRow> {
    if (row.status !== 'paused')
      throw new WrennError(
        'conflict',
        `sandbox '${row.id}' is ${row.status}; only a paused sandbox can be resumed`,
      );
    const host = await this.requireHost(row.host_id, 'resume');
    const req = { vcpus: row.vcpus, memoryMb: row.memory_mb, diskMb: 0 };
    await this.db.kysely.transaction().execute(async (trx) => {
      await this.lockScheduler(trx);
      const load = (await this.hostLoads(trx, [host.id]))[0];
      if (!load || scarcestAfter(load, req) === null) {
        throw new WrennError(
          'unavailable',
          `host '${host.id}' holding sandbox '${row.id}' has no room to resume it (needs ${req.vcpus} vCPU / ${req.memoryMb} MiB)`,
        );
      }
      const moved = await trx
        .updateTable('sandboxes')
        .set({ status: 'resuming', status_changed_at: this.clock() })
        .where('id', '=', row.id)
        .where('status', '=', 'paused')
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1)
        throw new WrennError('conflict', `sandbox '${row.id}' is already being resumed`);
    });
    const timeout = timeoutSeconds ?? row.timeout_seconds;
    try {
      const res = await this.agents
        .for(host)
        .resume({ sandboxId: row.id, timeoutSeconds: timeout });
      const fields = res.sandbox ? rowFieldsFromAgent(res.sandbox) : { status: 'running' as const };
      await this.update(row.id, {
        ...fields,
        timeout_seconds: timeout,
        status_changed_at: this.clock(),
        last_active_at: this.clock(),
      });
    } catch (e) {
      await this.update(row.id, { status: 'paused', status_changed_at: this.clock() });
      throw fromAgentError(e, `resume on host ${host.id}`);
    }
    await this.audit.record({
      teamId: row.team_id,
      actor,
      action: 'sandbox.resume',
      targetId: row.id,
      details: { hostId: host.id },
    });
    return await this.db.kysely
      .selectFrom('sandboxes')
      .selectAll()
      .where('id', '=', row.id)
      .executeTakeFirstOrThrow();
  }

  /**
   * Picks a host and inserts the row as `starting` in one transaction, so concurrent creates
   * see each other's reservations (advisory lock on PostgreSQL; SQLite serialises writers).
   */
  private async place(
    row: SandboxRow,
    req: Resources,
    pinnedHost: string | null,
  ): Promise<HostRow> {
    const hostId = await this.db.kysely.transaction().execute(async (trx) => {
      await this.lockScheduler(trx);
      let loads = await this.hostLoads(trx);
      if (pinnedHost) loads = loads.filter((h) => h.hostId === pinnedHost);
      if (loads.length === 0) {
        throw new WrennError(
          'unavailable',
          pinnedHost
            ? `the host holding template '${row.template_id}' is unreachable`
            : 'no host is registered and reachable',
        );
      }
      const choice = chooseHost(loads, req);
      if (!choice) {
        throw new WrennError(
          'unavailable',
          `no host has room for ${req.vcpus} vCPU / ${req.memoryMb} MiB RAM / ${req.diskMb} MiB disk (${loads.length} host(s), all full); kill or pause sandboxes or add a host`,
        );
      }
      row.host_id = choice.hostId;
      await trx.insertInto('sandboxes').values(row).execute();
      const meta = Object.entries(JSON.parse(row.metadata) as Record<string, string>);
      if (meta.length) {
        await trx
          .insertInto('sandbox_metadata')
          .values(meta.map(([key, value]) => ({ sandbox_id: row.id, key, value })))
          .execute();
      }
      return choice.hostId;
    });
    return (await this.hostRow(hostId))!;
  }

  private async lockScheduler(trx: Transaction<Database>) {
    if (this.db.dialect === 'postgres')
      await sql`select pg_advisory_xact_lock(${SCHEDULER_LOCK})`.execute(trx);
  }

  /** Ready hosts with fresh heartbeats, and what is used on each (DB reservations ∨ agent report). */
  private async hostLoads(trx: Transaction<Database>, only?: string[]): Promise<HostLoad[]> {
    let hq = trx
      .selectFrom('hosts')
      .selectAll()
      .where('status', '=', 'ready')
      .where('last_heartbeat_at', '>', this.clock() - this.config.heartbeatTimeoutMs);
    if (only) hq = hq.where('id', 'in', only);
    const hosts = await hq.execute();
    if (hosts.length === 0) return [];
    const live = await trx
      .selectFrom('sandboxes')
      .select((eb) => [
        'host_id',
        eb.fn.sum<number>('vcpus').as('vcpus'),
        eb.fn.sum<number>('memory_mb').as('mem'),
      ])
      .where('status', 'in', [...LIVE_STATUSES])
      .where(
        'host_id',
        'in',
        hosts.map((h) => h.id),
      )
      .groupBy('host_id')
      .execute();
    // A paused sandbox keeps its disk (overlay + snapshot) but no CPU or RAM.
    const disk = await trx
      .selectFrom('sandboxes')
      .select((eb) => ['host_id', eb.fn.sum<number>('disk_mb').as('disk')])
      .where('status', 'not in', ['stopped', 'error'])
      .where(
        'host_id',
        'in',
        hosts.map((h) => h.id),
      )
      .groupBy('host_id')
      .execute();
    return hosts.map((h) => {
      const l = live.find((x) => x.host_id === h.id);
      const d = disk.find((x) => x.host_id === h.id);
      const reserved = {
        vcpus: Number(l?.vcpus ?? 0),
        memoryMb: Number(l?.mem ?? 0),
        diskMb: Number(d?.disk ?? 0),
      };
      const reported = {
        vcpus: h.vcpus_used,
        memoryMb: Number(h.memory_used_mb),
        diskMb: Number(h.disk_used_mb),
      };
      return {
        hostId: h.id,
        capacity: { vcpus: h.vcpus, memoryMb: Number(h.memory_mb), diskMb: Number(h.disk_mb) },
        used: maxResources(reserved, reported),
      };
    });
  }

  /** Team-scoped lookup: another team's sandbox is indistinguishable from a missing one. */
  async rowFor(caller: Caller, id: string): Promise<SandboxRow> {
    if (!isValidId(id)) throw new WrennError('invalid_argument', `invalid sandbox id '${id}'`);
    const row = await this.db.kysely
      .selectFrom('sandboxes')
      .selectAll()
      .where('id', '=', id)
      .where('team_id', '=', caller.teamId)
      .executeTakeFirst();
    if (!row) throw new WrennError('not_found', `sandbox '${id}' not found`);
    return row;
  }

  private async hostRow(id: string): Promise<HostRow | undefined> {
    return this.db.kysely.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
  }

  private async requireHost(id: string, what: string): Promise<HostRow> {
    const host = await this.hostRow(id);
    if (!host || host.status !== 'ready')
      throw new WrennError('unavailable', `cannot ${what}: host '${id}' is unreachable`);
    return host;
  }

  private async transition(id: string, from: SandboxStatus, to: SandboxStatus): Promise<boolean> {
    const r = await this.db.kysely
      .updateTable('sandboxes')
      .set({ status: to, status_changed_at: this.clock() })
      .where('id', '=', id)
      .where('status', '=', from)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  private async update(id: string, set: Partial<SandboxRow>) {
    await this.db.kysely.updateTable('sandboxes').set(set).where('id', '=', id).execute();
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function encodeOutput(buf: Buffer): { text: string; encoding: 'utf8' | 'base64' } {
  try {
    return { text: utf8.decode(buf), encoding: 'utf8' };
  } catch {
    return { text: buf.toString('base64'), encoding: 'base64' };
  }
}
