import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chooseHost, scarcestAfter } from '../../src/scheduler/placement.ts';
import { startTestCluster } from '../support/cluster.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

describe('placement rule', () => {
  const host = (
    hostId: string,
    used: [number, number, number],
    cap: [number, number, number] = [8, 8192, 10_000],
  ) => ({
    hostId,
    capacity: { vcpus: cap[0], memoryMb: cap[1], diskMb: cap[2] },
    used: { vcpus: used[0], memoryMb: used[1], diskMb: used[2] },
  });
  const req = { vcpus: 1, memoryMb: 512, diskMb: 1000 };

  it('scores a host by its scarcest resource after placement', () => {
    expect(scarcestAfter(host('a', [0, 0, 0]), req)).toBeCloseTo(0.125); // CPU 1/8 beats RAM 512/8192 and disk 0.1
    expect(scarcestAfter(host('a', [0, 7000, 0]), req)).toBeCloseTo(7512 / 8192);
  });
  it('picks the host whose scarcest resource is least used, not the one with most free CPU', () => {
    // a: CPU idle but RAM nearly full; b: CPU half used, RAM free → b.
    expect(chooseHost([host('a', [0, 7000, 0]), host('b', [4, 0, 0])], req)?.hostId).toBe('b');
  });
  it('never overcommits: a host short of any one resource is not a candidate', () => {
    expect(chooseHost([host('a', [0, 0, 9500])], req)).toBeNull();
    expect(chooseHost([host('a', [8, 0, 0])], req)).toBeNull();
    expect(chooseHost([host('a', [7, 7680, 9000])], req)?.hostId).toBe('a'); // exactly full is allowed
  });
  it('breaks ties by host id so placement is deterministic', () => {
    expect(chooseHost([host('b', [0, 0, 0]), host('a', [0, 0, 0])], req)?.hostId).toBe('a');
  });
});

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

describe.each(['sqlite', 'postgres'] as const)('scheduling through the API on %s', (dialect) => {
  it('spreads sandboxes across hosts by load, admits until full, then answers 503 without overcommitting', async () => {
    const c = await startTestCluster(dialect, pg, {
      agents: 2,
      capacity: { vcpus: 2, memoryMb: 2048, diskMb: 100_000 },
    });
    try {
      const hosts: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await c.t.api('POST', '/v1/sandboxes', {
          body: { templateId: 'minimal', vcpus: 1, memoryMb: 512 },
        });
        expect(r.status).toBe(201);
        hosts.push(r.body.hostId);
      }
      // Alternating: each placement makes its host the more loaded one.
      expect(hosts.filter((h) => h === c.agents[0]!.hostId)).toHaveLength(2);
      expect(hosts.filter((h) => h === c.agents[1]!.hostId)).toHaveLength(2);
      const full = await c.t.api('POST', '/v1/sandboxes', {
        body: { templateId: 'minimal', vcpus: 1, memoryMb: 512 },
      });
      expect(full.status).toBe(503);
      expect(full.body).toEqual({
        code: 'unavailable',
        message: expect.stringContaining('no host has room for 1 vCPU'),
      });
      expect(c.agents[0]!.sandboxes.size + c.agents[1]!.sandboxes.size).toBe(4);
      // A paused sandbox frees CPU and RAM on its host: a new one fits again, on that host.
      const first = (await c.t.api('GET', '/v1/sandboxes?limit=1000')).body.sandboxes.at(-1);
      await c.t.api('POST', `/v1/sandboxes/${first.sandboxId}/pause`);
      const again = await c.t.api('POST', '/v1/sandboxes', {
        body: { templateId: 'minimal', vcpus: 1, memoryMb: 512 },
      });
      expect(again.status).toBe(201);
      expect(again.body.hostId).toBe(first.hostId);
      // …and now the paused one cannot resume on its (full) host: 503, still paused.
      const resume = await c.t.api('POST', `/v1/sandboxes/${first.sandboxId}/resume`);
      expect(resume.status).toBe(503);
      expect(resume.body.message).toContain('no room to resume');
      expect((await c.t.api('GET', `/v1/sandboxes/${first.sandboxId}`)).body.status).toBe('paused');
    } finally {
      await c.close();
    }
  });

  it('admits exactly what fits when creates race (placement and reservation are one transaction)', async () => {
    const c = await startTestCluster(dialect, pg, {
      agents: 2,
      capacity: { vcpus: 2, memoryMb: 4096, diskMb: 100_000 },
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 7 }, () =>
          c.t.api('POST', '/v1/sandboxes', {
            body: { templateId: 'minimal', vcpus: 1, memoryMb: 512 },
          }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([201, 201, 201, 201, 503, 503, 503]);
      expect(c.agents.map((a) => a.sandboxes.size)).toEqual([2, 2]);
    } finally {
      await c.close();
    }
  });

  it('answers 503 when no host is registered, and skips hosts with stale heartbeats', async () => {
    const c = await startTestCluster(dialect, pg, { agents: 1 });
    try {
      c.t.clock.advance(c.t.cp.core.config.heartbeatTimeoutMs + 1);
      const r = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal' } });
      expect(r.status).toBe(503);
      expect(r.body.message).toContain('no host is registered and reachable');
      await c.heartbeatAll();
      expect(
        (await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal' } })).status,
      ).toBe(201);
    } finally {
      await c.close();
    }
  });
});
