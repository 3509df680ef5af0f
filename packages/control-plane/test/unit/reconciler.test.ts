import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

// The reconciler against a fake agent whose list the test controls, on both databases.
let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

describe.each(['sqlite', 'postgres'] as const)('reconciler on %s', (dialect) => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await startTestCluster(dialect, pg, {
      capacity: { vcpus: 64, memoryMb: 1 << 18, diskMb: 1 << 22 },
    });
  });
  afterAll(async () => {
    await c?.close();
  });
  const create = async (body: object = {}) =>
    (await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal', ...body } })).body
      .sandboxId as string;
  const status = async (id: string) => (await c.t.api('GET', `/v1/sandboxes/${id}`)).body.status;
  const reconcile = () => c.t.cp.core.reconciler.runOnce();

  it('marks a host unreachable after the heartbeat window, its sandboxes missing, and restores both on return', async () => {
    const running = await create();
    const paused = await create();
    await c.t.api('POST', `/v1/sandboxes/${paused}/pause`);
    c.t.clock.advance(c.t.cp.core.config.heartbeatTimeoutMs - 1);
    expect((await reconcile()).hostsMarkedUnreachable).toEqual([]); // inside the window
    c.t.clock.advance(2);
    const report = await reconcile();
    expect(report.hostsMarkedUnreachable).toEqual([c.agents[0]!.hostId]);
    expect(await status(running)).toBe('missing');
    expect(await status(paused)).toBe('missing');
    expect((await c.t.api('GET', `/v1/hosts/${c.agents[0]!.hostId}`)).body.status).toBe(
      'unreachable',
    );
    // The host comes back: its list says what is running and what is paused.
    await c.heartbeatAll();
    await reconcile();
    expect(await status(running)).toBe('running');
    expect(await status(paused)).toBe('paused');
    expect((await c.t.api('POST', `/v1/sandboxes/${paused}/resume`)).status).toBe(200);
  });

  it('follows the agent: auto-paused → paused, gone → stopped', async () => {
    const a = await create({ lifecycle: { onTimeout: 'pause' } });
    const b = await create();
    c.agents[0]!.autoPause(a);
    c.agents[0]!.drop(b);
    const report = await reconcile();
    expect(report.changed[a]).toBe('running→paused');
    expect(report.changed[b]).toBe('running→stopped');
    expect(await status(a)).toBe('paused');
    expect(await status(b)).toBe('stopped');
    const audit = await c.t.api('GET', '/v1/audit?action=sandbox.reconcile&limit=1000');
    expect(audit.body.entries.find((e: any) => e.targetId === a).details).toMatchObject({
      from: 'running',
      to: 'paused',
      reason: 'auto-paused',
    });
  });

  it('destroys, and audits, a sandbox the agent holds but the DB calls stopped', async () => {
    const id = await create();
    await c.t.cp.core.db.kysely
      .updateTable('sandboxes')
      .set({ status: 'stopped' })
      .where('id', '=', id)
      .execute();
    expect(c.agents[0]!.sandboxes.has(id)).toBe(true);
    const report = await reconcile();
    expect(report.destroyed).toContain(id);
    expect(c.agents[0]!.sandboxes.has(id)).toBe(false);
    const audit = await c.t.api('GET', '/v1/audit?action=sandbox.destroy.orphan');
    expect(audit.body.entries.map((e: any) => e.targetId)).toContain(id);
  });

  it('leaves transient statuses alone during their grace period, then lets the agent win', async () => {
    const id = await create();
    await c.t.cp.core.db.kysely
      .updateTable('sandboxes')
      .set({ status: 'pausing', status_changed_at: c.t.clock.now() })
      .where('id', '=', id)
      .execute();
    await reconcile();
    expect(await status(id)).toBe('pausing');
    c.t.clock.advance(c.t.cp.core.config.transientGraceMs + 1);
    await c.heartbeatAll();
    await reconcile();
    expect(await status(id)).toBe('running');
  });

  it('kills while the host is unreachable are deferred, then carried out when it returns', async () => {
    const id = await create();
    const agent = c.agents[0]!;
    await c.t.cp.core.db.kysely
      .updateTable('hosts')
      .set({ agent_url: 'http://127.0.0.1:9' })
      .where('id', '=', agent.hostId)
      .execute();
    const k = await c.t.api('DELETE', `/v1/sandboxes/${id}`);
    expect(k.status).toBe(204);
    expect(agent.sandboxes.has(id)).toBe(true);
    await c.t.cp.core.db.kysely
      .updateTable('hosts')
      .set({ agent_url: agent.url })
      .where('id', '=', agent.hostId)
      .execute();
    await reconcile();
    expect(agent.sandboxes.has(id)).toBe(false);
  });
});
