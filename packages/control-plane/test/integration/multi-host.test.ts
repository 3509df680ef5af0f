import { rmSync } from 'node:fs';
import { createLogger } from '@wrenn/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type RunningControlPlane, startControlPlane } from '../../src/index.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';
import { type AgentProcess, agentDir, killVmsUnder, spawnAgent } from '../support/real-agent.ts';

/**
 * Two real agents (child processes, separate WRENN_DIRs, QEMU VMs) behind one control
 * plane on a real PostgreSQL. Kill one agent: its host turns unreachable and its sandboxes
 * missing. Restart it: re-adopted sandboxes reconcile to running, the paused one is still
 * paused and resumes with its files.
 *
 * Time is the control plane's clock plus an offset the test moves, so "the heartbeat
 * window passed" never depends on how fast this machine is.
 */
describe('multi-host on PostgreSQL with real agents', () => {
  let pg: TestPostgres;
  let cp: RunningControlPlane;
  let offset = 0;
  const dirs: string[] = [];
  const agents: Record<'a' | 'b', AgentProcess | undefined> = { a: undefined, b: undefined };
  const created: string[] = [];
  let key = '';

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${cp.url}${path}`, {
      method,
      headers: {
        'x-api-key': key,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const hostOf = async (agentUrl: string) =>
    await cp.core.db.kysely
      .selectFrom('hosts')
      .selectAll()
      .where('agent_url', '=', agentUrl)
      .executeTakeFirstOrThrow();
  /** Waits for the agent's own 5 s heartbeat to land at the control plane's current time. */
  const freshHeartbeat = async (agentUrl: string) => {
    const since = cp.core.clock();
    for (let i = 0; i < 600; i++) {
      const h = await hostOf(agentUrl);
      if (Number(h.last_heartbeat_at) >= since && h.status === 'ready') return h;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no heartbeat from ${agentUrl}`);
  };
  const create = async () => {
    const r = await api('POST', '/v1/sandboxes', {
      templateId: 'minimal',
      memoryMb: 256,
      timeoutSeconds: 0,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    created.push(r.body.sandboxId);
    return r.body as { sandboxId: string; hostId: string };
  };
  const exec = async (id: string, cmd: string) =>
    (await api('POST', `/v1/sandboxes/${id}/exec`, { cmd })).body;

  beforeAll(async () => {
    pg = await startPostgres();
    const cpDir = await agentDir(inject('wrennDir' as never));
    dirs.push(cpDir);
    cp = await startControlPlane({
      dir: cpDir,
      databaseUrl: await pg.createDatabase('wrenn_multihost'),
      port: 0,
      log: createLogger('cp', process.env.WRENN_TEST_LOG ?? 'warn'),
      clock: () => Date.now() + offset,
      reconcile: false,
    });
    key = cp.adminKey!;
    for (const name of ['a', 'b'] as const) {
      const dir = await agentDir(inject('wrennDir' as never));
      dirs.push(dir);
      const { body } = await api('POST', '/v1/hosts/tokens');
      agents[name] = await spawnAgent(dir, ['--register', body.token, '--control-plane', cp.url]);
    }
  });

  afterAll(async () => {
    for (const id of created) await api('DELETE', `/v1/sandboxes/${id}`).catch(() => undefined);
    for (const a of Object.values(agents)) await a?.stop();
    await cp?.close();
    await pg?.stop();
    killVmsUnder(dirs);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('registers both hosts over PostgreSQL', async () => {
    const r = await api('GET', '/v1/hosts');
    expect(r.body.hosts.map((h: any) => h.status)).toEqual(['ready', 'ready']);
    expect(new Set(r.body.hosts.map((h: any) => h.agentUrl))).toEqual(
      new Set([agents.a!.url, agents.b!.url]),
    );
  });

  let onA = '';
  let onB = '';
  let pausedOnB = '';
  it('spreads sandboxes across the two hosts by load', async () => {
    const s1 = await create();
    const s2 = await create();
    expect(s1.hostId).not.toBe(s2.hostId);
    const hostB = (await hostOf(agents.b!.url)).id;
    [pausedOnB, onA] =
      s1.hostId === hostB ? [s1.sandboxId, s2.sandboxId] : [s2.sandboxId, s1.sandboxId];
    // B's first sandbox gets a file, then is paused: B now has the least CPU/RAM in use.
    expect((await exec(pausedOnB, 'echo kept > /tmp/marker && cat /tmp/marker')).stdout).toBe(
      'kept\n',
    );
    expect((await api('POST', `/v1/sandboxes/${pausedOnB}/pause`)).body.status).toBe('paused');
    await freshHeartbeat(agents.b!.url);
    const s3 = await create();
    expect(s3.hostId).toBe(hostB);
    onB = s3.sandboxId;
    expect((await exec(onB, 'echo $((20+22))')).stdout).toBe('42\n');
  });

  it('marks the host of a killed agent unreachable and its sandboxes missing', async () => {
    await agents.b!.kill();
    offset += cp.core.config.heartbeatTimeoutMs + 1_000;
    await freshHeartbeat(agents.a!.url); // A is alive at the new time, B cannot be
    const report = await cp.core.reconciler.runOnce();
    expect(report.hostsMarkedUnreachable).toEqual([(await hostOf(agents.b!.url)).id]);
    expect((await api('GET', `/v1/sandboxes/${onB}`)).body.status).toBe('missing');
    expect((await api('GET', `/v1/sandboxes/${pausedOnB}`)).body.status).toBe('missing');
    expect((await api('GET', `/v1/sandboxes/${onA}`)).body.status).toBe('running');
    expect((await exec(onA, 'echo still')).stdout).toBe('still\n');
    const gw = await fetch(`${cp.url}/health`, {
      headers: { 'E2b-Sandbox-Id': onB, 'E2b-Sandbox-Port': '49983' },
    });
    expect(gw.status).toBe(502);
  });

  it('reconciles re-adopted sandboxes to running when the agent comes back, paused ones stay resumable', async () => {
    // Same dir (agent.json: no re-registration) and same port, as a host's agent restarts.
    const port = Number(new URL(agents.b!.url).port);
    agents.b = await spawnAgent(dirs[2]!, ['--control-plane', cp.url], port);
    await freshHeartbeat(agents.b.url);
    await cp.core.reconciler.runOnce();
    expect((await api('GET', `/v1/sandboxes/${onB}`)).body.status).toBe('running');
    expect((await exec(onB, 'echo back')).stdout).toBe('back\n');
    expect((await api('GET', `/v1/sandboxes/${pausedOnB}`)).body.status).toBe('paused');
    const resumed = await api('POST', `/v1/sandboxes/${pausedOnB}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.hostId).toBe((await hostOf(agents.b.url)).id);
    expect((await exec(pausedOnB, 'cat /tmp/marker')).stdout).toBe('kept\n');
  });
});
