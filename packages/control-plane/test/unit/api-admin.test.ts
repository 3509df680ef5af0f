import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';
import { startTestControlPlane } from '../support/control-plane.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

// Templates, hosts, keys, audit, rate limit and the OpenAPI document, on both databases.
let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

const expectError = (res: { status: number; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ code, message: expect.any(String) });
};

describe.each(['sqlite', 'postgres'] as const)('admin API on %s', (dialect) => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await startTestCluster(dialect, pg, {
      capacity: { vcpus: 64, memoryMb: 1 << 18, diskMb: 1 << 22 },
    });
  });
  afterAll(async () => {
    await c?.close();
  });

  describe('first start', () => {
    it('writes the admin key 0600 under WRENN_DIR and never creates a second one', async () => {
      const file = join(c.t.dir, 'admin-key');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8').trim()).toBe(c.t.adminKey);
      expect(await c.t.cp.core.keys.bootstrapAdmin(c.t.dir)).toBeNull();
    });
  });

  describe('templates', () => {
    it('lists the public built-ins to every team', async () => {
      for (const key of [c.t.adminKey, c.otherKey]) {
        const r = await c.t.api('GET', '/v1/templates', { key });
        expect(r.status).toBe(200);
        expect(r.body.templates.map((t: any) => `${t.teamId}/${t.templateId}`)).toEqual(
          expect.arrayContaining(['public/base', 'public/minimal']),
        );
      }
    });
    it('snapshots a running sandbox into a team template that only that team sees, pinned to its host', async () => {
      const s = await c.t.api('POST', '/v1/sandboxes', {
        body: { templateId: 'base', memoryMb: 768 },
      });
      const snap = await c.t.api('POST', '/v1/templates', {
        body: { sandboxId: s.body.sandboxId, templateId: 'my-snap' },
      });
      expect(snap.status).toBe(201);
      expect(snap.body).toMatchObject({
        templateId: 'my-snap',
        teamId: 'default',
        kind: 'snapshot',
        hostId: c.agents[0]!.hostId,
        memoryMb: 768,
        sizeBytes: 1234,
      });
      expectError(
        await c.t.api('POST', '/v1/templates', {
          body: { sandboxId: s.body.sandboxId, templateId: 'my-snap' },
        }),
        409,
        'conflict',
      );
      expectError(
        await c.t.api('GET', '/v1/templates/my-snap', { key: c.otherKey }),
        404,
        'not_found',
      );
      expectError(
        await c.t.api('POST', '/v1/sandboxes', {
          key: c.otherKey,
          body: { templateId: 'my-snap' },
        }),
        400,
        'invalid_argument',
      );
      expectError(
        await c.t.api('POST', '/v1/templates', {
          key: c.otherKey,
          body: { sandboxId: s.body.sandboxId, templateId: 'stolen' },
        }),
        404,
        'not_found',
      );
      const fromSnap = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'my-snap' } });
      expect(fromSnap.status).toBe(201);
      expect(fromSnap.body.memoryMb).toBe(768);
      // In use: deleting it must fail until the sandbox is gone.
      expectError(await c.t.api('DELETE', '/v1/templates/my-snap'), 409, 'conflict');
      await c.t.api('DELETE', `/v1/sandboxes/${fromSnap.body.sandboxId}`);
      expectError(
        await c.t.api('DELETE', '/v1/templates/my-snap', { key: c.otherKey }),
        404,
        'not_found',
      );
      const del = await c.t.api('DELETE', '/v1/templates/my-snap');
      expect(del.status).toBe(204);
      expect(c.agents[0]!.calls).toContain('deleteTemplate default/my-snap');
      expectError(await c.t.api('GET', '/v1/templates/my-snap'), 404, 'not_found');
    });
    it('refuses to delete a built-in (403) and validates ids (400)', async () => {
      expectError(await c.t.api('DELETE', '/v1/templates/base'), 403, 'permission_denied');
      expectError(await c.t.api('DELETE', '/v1/templates/Nope!'), 400, 'invalid_argument');
      expectError(
        await c.t.api('POST', '/v1/templates', { body: { sandboxId: 'x' } }),
        400,
        'invalid_argument',
      );
      expectError(await c.t.api('GET', '/v1/templates', { key: null }), 401, 'unauthenticated');
    });
  });

  describe('hosts', () => {
    it('lists hosts with capacity and load for the admin only', async () => {
      const r = await c.t.api('GET', '/v1/hosts');
      expect(r.status).toBe(200);
      expect(r.body.hosts).toHaveLength(1);
      expect(r.body.hosts[0]).toMatchObject({
        hostId: c.agents[0]!.hostId,
        status: 'ready',
        accelerator: 'tcg',
        capacity: { vcpus: 64 },
      });
      expectError(await c.t.api('GET', '/v1/hosts', { key: c.otherKey }), 403, 'permission_denied');
      expectError(
        await c.t.api('POST', '/v1/hosts/tokens', { key: c.otherKey }),
        403,
        'permission_denied',
      );
      expectError(await c.t.api('GET', '/v1/hosts', { key: null }), 401, 'unauthenticated');
    });
    it('consumes a registration token once', async () => {
      const tok = await c.t.api('POST', '/v1/hosts/tokens');
      const body = {
        registrationToken: tok.body.token,
        agentUrl: 'http://127.0.0.1:1',
        capacity: { vcpus: 1, memoryMb: 1024, diskMb: 1024 },
      };
      const first = await c.t.api('POST', '/v1/hosts/register', { key: null, body });
      expect(first.status).toBe(201);
      expect(first.body.hostToken).toMatch(/^wrh_/);
      expectError(
        await c.t.api('POST', '/v1/hosts/register', { key: null, body }),
        401,
        'unauthenticated',
      );
      expectError(
        await c.t.api('POST', '/v1/hosts/register', {
          key: null,
          body: { ...body, agentUrl: 'not a url' },
        }),
        400,
        'invalid_argument',
      );
      // An empty host can be removed; a host holding sandboxes cannot.
      expect((await c.t.api('DELETE', `/v1/hosts/${first.body.hostId}`)).status).toBe(204);
      await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal' } });
      expectError(await c.t.api('DELETE', `/v1/hosts/${c.agents[0]!.hostId}`), 409, 'conflict');
      expectError(await c.t.api('DELETE', '/v1/hosts/nosuchhost'), 404, 'not_found');
    });
    it('rejects expired registration tokens', async () => {
      const tok = await c.t.api('POST', '/v1/hosts/tokens');
      c.t.clock.advance(c.t.cp.core.config.registrationTokenTtlMs + 1);
      const r = await c.t.api('POST', '/v1/hosts/register', {
        key: null,
        body: {
          registrationToken: tok.body.token,
          agentUrl: 'http://127.0.0.1:1',
          capacity: { vcpus: 1, memoryMb: 1, diskMb: 1 },
        },
      });
      expectError(r, 401, 'unauthenticated');
      await c.heartbeatAll(); // keep the real host fresh at the new time
    });
    it('authenticates heartbeats with the host token and validates them', async () => {
      const a = c.agents[0]!;
      const hb = (token: string, body: unknown) =>
        c.t.api('POST', `/v1/hosts/${a.hostId}/heartbeat`, {
          key: null,
          headers: { 'x-wrenn-host-token': token },
          body,
        });
      const good = {
        capacity: a.capacity,
        load: {
          vcpusUsed: 1,
          memoryUsedMb: 512,
          diskUsedMb: 10,
          sandboxesRunning: 1,
          sandboxesPaused: 0,
        },
        accelerator: 'kvm',
      };
      expect((await hb(a.hostToken, good)).status).toBe(200);
      expect((await c.t.api('GET', `/v1/hosts/${a.hostId}`)).body.accelerator).toBe('kvm');
      expectError(await hb('wrh_wrong', good), 401, 'unauthenticated');
      expectError(await hb(a.hostToken, { capacity: { vcpus: 'many' } }), 400, 'invalid_argument');
      expectError(
        await c.t.api('POST', `/v1/hosts/${a.hostId}/heartbeat`, { key: null, body: good }),
        401,
        'unauthenticated',
      );
    });
  });

  describe('keys', () => {
    it('creates (shown once), lists (never the key), authenticates and revokes', async () => {
      const created = await c.t.api('POST', '/v1/keys', { key: c.otherKey, body: { name: 'ci' } });
      expect(created.status).toBe(201);
      expect(created.body.key).toMatch(/^wrn_/);
      expect(created.body.info).toMatchObject({ teamId: 'other', name: 'ci', isAdmin: false });
      const listed = await c.t.api('GET', '/v1/keys', { key: c.otherKey });
      expect(listed.body.keys.map((k: any) => k.name)).toEqual(['other', 'ci']);
      expect(JSON.stringify(listed.body)).not.toContain(created.body.key);
      expect((await c.t.api('GET', '/v1/sandboxes', { key: created.body.key })).status).toBe(200);
      expectError(
        await c.t.api('DELETE', `/v1/keys/${created.body.info.id}`, { key: 'wrn_bad' }),
        401,
        'unauthenticated',
      );
      const revoked = await c.t.api('DELETE', `/v1/keys/${created.body.info.id}`, {
        key: c.otherKey,
      });
      expect(revoked.status).toBe(200);
      expect(revoked.body.revokedAt).not.toBeNull();
      expectError(
        await c.t.api('GET', '/v1/sandboxes', { key: created.body.key }),
        401,
        'unauthenticated',
      );
      expectError(
        await c.t.api('DELETE', `/v1/keys/${created.body.info.id}`, { key: c.otherKey }),
        409,
        'conflict',
      );
    });
    it('isolates teams: no creating keys for, or revoking keys of, another team', async () => {
      expectError(
        await c.t.api('POST', '/v1/keys', {
          key: c.otherKey,
          body: { name: 'x', teamId: 'default' },
        }),
        403,
        'permission_denied',
      );
      const adminKeys = await c.t.api('GET', '/v1/keys');
      const adminKeyId = adminKeys.body.keys.find((k: any) => k.isAdmin).id;
      expectError(
        await c.t.api('DELETE', `/v1/keys/${adminKeyId}`, { key: c.otherKey }),
        404,
        'not_found',
      );
      expectError(
        await c.t.api('POST', '/v1/keys', { body: { name: '' } }),
        400,
        'invalid_argument',
      );
      expectError(
        await c.t.api('POST', '/v1/keys', { body: { name: 'x', teamId: 'Bad Team' } }),
        400,
        'invalid_argument',
      );
    });
  });

  describe('audit', () => {
    it('records actions, shows a team only its own entries, pages by nextToken', async () => {
      const mine = await c.t.api('GET', '/v1/audit?limit=1000', { key: c.otherKey });
      expect(mine.status).toBe(200);
      expect(mine.body.entries.length).toBeGreaterThan(0);
      expect(mine.body.entries.every((e: any) => e.teamId === 'other')).toBe(true);
      expect(mine.body.entries.map((e: any) => e.action)).toContain('key.revoke');
      const all = await c.t.api('GET', '/v1/audit?limit=2');
      expect(all.body.entries).toHaveLength(2);
      const next = await c.t.api('GET', `/v1/audit?limit=2&nextToken=${all.body.nextToken}`);
      expect(next.body.entries[0].id).toBeLessThan(all.body.entries[1].id);
      const creates = await c.t.api('GET', '/v1/audit?action=sandbox.create');
      expect(creates.body.entries.length).toBeGreaterThan(0);
      expectError(await c.t.api('GET', '/v1/audit?nextToken=abc'), 400, 'invalid_argument');
    });
  });

  describe('OpenAPI', () => {
    it('documents every /v1 route from the validating schemas', async () => {
      const r = await c.t.api('GET', '/openapi.json', { key: null });
      expect(r.status).toBe(200);
      expect(r.body.openapi).toBe('3.1.0');
      const ops = Object.entries(r.body.paths).flatMap(([p, m]) =>
        Object.keys(m as object).map((v) => `${v.toUpperCase()} ${p}`),
      );
      const served = c.t.cp.server.registry.specs.map(
        (s) => `${s.method} ${s.url.replace(/:(\w+)/g, '{$1}')}`,
      );
      expect(ops.sort()).toEqual(served.sort());
      expect(ops.length).toBeGreaterThanOrEqual(24);
      const create =
        r.body.paths['/v1/sandboxes'].post.requestBody.content['application/json'].schema;
      expect(create.properties.vcpus).toMatchObject({ type: 'integer', minimum: 1, maximum: 64 });
      expect(create.additionalProperties).toBe(false);
    });
  });
});

describe('rate limit', () => {
  it('answers 429 with Retry-After once a key exhausts its bucket, and recovers as time passes', async () => {
    const t = await startTestControlPlane('sqlite', undefined, {
      rateLimit: { perSecond: 1, burst: 3 },
    });
    try {
      for (let i = 0; i < 3; i++) expect((await t.api('GET', '/v1/templates')).status).toBe(200);
      const limited = await t.api('GET', '/v1/templates');
      expectError(limited, 429, 'resource_exhausted');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Another key has its own bucket.
      const other = await t.api('POST', '/v1/keys', { body: { name: 'x', teamId: 'x' } });
      expect(other.status).toBe(429); // still the admin key's bucket
      t.clock.advance(2_000);
      expect((await t.api('GET', '/v1/templates')).status).toBe(200);
      const k = await t.api('POST', '/v1/keys', { body: { name: 'y', teamId: 'y' } });
      expect(k.status).toBe(201);
      for (let i = 0; i < 3; i++)
        expect((await t.api('GET', '/v1/templates', { key: k.body.key })).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
