import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

// Every route of the sandbox API on both databases: success, 401, other team's 404,
// malformed JSON, wrong types, out-of-range resources, unknown template, bad ids.
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
  expect(res.body.message).not.toMatch(/\n\s+at /); // never a stack trace
};

describe.each(['sqlite', 'postgres'] as const)('sandbox API on %s', (dialect) => {
  let c: TestCluster;
  let id: string;
  beforeAll(async () => {
    c = await startTestCluster(dialect, pg, {
      capacity: { vcpus: 256, memoryMb: 1 << 20, diskMb: 1 << 24 },
    });
    const res = await c.t.api('POST', '/v1/sandboxes', {
      body: {
        templateId: 'base',
        metadata: { app: 'web', env: 'test' },
        envVars: { A: '1' },
        timeoutSeconds: 600,
      },
    });
    expect(res.status).toBe(201);
    id = res.body.sandboxId;
  });
  afterAll(async () => {
    await c?.close();
  });

  describe('auth', () => {
    it('rejects a missing key with 401 JSON', async () => {
      expectError(await c.t.api('GET', '/v1/sandboxes', { key: null }), 401, 'unauthenticated');
    });
    it('rejects a wrong key with 401 JSON', async () => {
      expectError(
        await c.t.api('GET', '/v1/sandboxes', { key: 'wrn_nope' }),
        401,
        'unauthenticated',
      );
    });
    it('accepts Authorization: Bearer as well as X-API-Key', async () => {
      const res = await c.t.api('GET', `/v1/sandboxes/${id}`, {
        key: null,
        headers: { authorization: `Bearer ${c.t.adminKey}` },
      });
      expect(res.status).toBe(200);
      expect(res.body.sandboxId).toBe(id);
    });
    it('accepts the header spelled X-API-KEY as the e2b SDK sends it', async () => {
      const res = await c.t.api('GET', `/v1/sandboxes/${id}`, {
        key: null,
        headers: { 'X-API-KEY': c.t.adminKey },
      });
      expect(res.status).toBe(200);
    });
  });

  describe('create', () => {
    it('creates with template defaults, metadata, timeout and lifecycle', async () => {
      const res = await c.t.api('POST', '/v1/sandboxes', {
        body: {
          templateId: 'minimal',
          vcpus: 2,
          memoryMb: 1024,
          timeoutSeconds: 30,
          lifecycle: { onTimeout: 'pause', autoResume: true },
          metadata: { k: 'v' },
        },
      });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        templateId: 'minimal',
        status: 'running',
        vcpus: 2,
        memoryMb: 1024,
        timeoutSeconds: 30,
        lifecycle: { onTimeout: 'pause', autoResume: true },
        metadata: { k: 'v' },
        teamId: 'default',
        hostId: c.agents[0]!.hostId,
      });
      expect(res.body.sandboxId).toMatch(/^[a-z0-9]{20}$/);
      expect(c.agents[0]!.sandboxes.get(res.body.sandboxId)?.timeoutAction).toBe(2); // PAUSE reached the agent
    });
    it('rejects malformed JSON with 400', async () => {
      expectError(
        await c.t.api('POST', '/v1/sandboxes', { raw: '{"templateId": ' }),
        400,
        'invalid_argument',
      );
    });
    it('rejects wrong types with 400 naming the field', async () => {
      const res = await c.t.api('POST', '/v1/sandboxes', {
        body: { templateId: 'base', vcpus: 'two' },
      });
      expectError(res, 400, 'invalid_argument');
      expect(res.body.message).toContain('body.vcpus');
    });
    it('rejects unknown fields with 400', async () => {
      expectError(
        await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'base', gpus: 1 } }),
        400,
        'invalid_argument',
      );
    });
    it('rejects out-of-range resources with 400', async () => {
      expectError(
        await c.t.api('POST', '/v1/sandboxes', { body: { memoryMb: 1 } }),
        400,
        'invalid_argument',
      );
      const overLimit = await c.t.api('POST', '/v1/sandboxes', { body: { vcpus: 32 } });
      expectError(overLimit, 400, 'invalid_argument');
      expect(overLimit.body.message).toContain('per-sandbox limit');
    });
    it('rejects an unknown template with 400', async () => {
      const res = await c.t.api('POST', '/v1/sandboxes', {
        body: { templateId: 'no-such-template' },
      });
      expectError(res, 400, 'invalid_argument');
      expect(res.body.message).toContain("unknown template 'no-such-template'");
    });
    it('rejects a template id that is not DNS-safe with 400', async () => {
      expectError(
        await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'Bad_Template' } }),
        400,
        'invalid_argument',
      );
    });
    it('records a failed agent create as stopped and answers with the error', async () => {
      // The fake agent fails creates of template `explode`; a team template of that name routes there.
      await c.t.cp.core.templates.insertSnapshot({
        team_id: 'default',
        id: 'explode',
        kind: 'snapshot',
        host_id: c.agents[0]!.hostId,
        source_sandbox_id: null,
        vcpus: 1,
        memory_mb: 256,
        disk_mb: 512,
        size_bytes: 0,
        created_at: c.t.clock.now(),
      });
      const res = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'explode' } });
      expectError(res, 500, 'internal');
      const audit = await c.t.api('GET', '/v1/audit?action=sandbox.create.failed');
      expect(audit.body.entries.length).toBe(1);
      await c.t.cp.core.db.kysely.deleteFrom('templates').where('id', '=', 'explode').execute();
    });
  });

  describe('get / list', () => {
    it('gets a sandbox', async () => {
      const res = await c.t.api('GET', `/v1/sandboxes/${id}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        sandboxId: id,
        status: 'running',
        metadata: { app: 'web', env: 'test' },
      });
    });
    it("answers 404 for another team's sandbox, exactly as for a missing one", async () => {
      const other = await c.t.api('GET', `/v1/sandboxes/${id}`, { key: c.otherKey });
      const missing = await c.t.api('GET', '/v1/sandboxes/doesnotexist000000000');
      expectError(other, 404, 'not_found');
      expectError(missing, 404, 'not_found');
      expect(other.body.message.replace(id, 'X')).toBe(
        missing.body.message.replace('doesnotexist000000000', 'X'),
      );
    });
    it('rejects a bad id with 400', async () => {
      expectError(await c.t.api('GET', '/v1/sandboxes/NOT_AN_ID'), 400, 'invalid_argument');
    });
    it('filters by metadata', async () => {
      const hit = await c.t.api(
        'GET',
        `/v1/sandboxes?metadata=${encodeURIComponent('app=web&env=test')}`,
      );
      expect(hit.status).toBe(200);
      expect(hit.body.sandboxes.map((s: any) => s.sandboxId)).toEqual([id]);
      const miss = await c.t.api(
        'GET',
        `/v1/sandboxes?metadata=${encodeURIComponent('app=web&env=prod')}`,
      );
      expect(miss.body.sandboxes).toEqual([]);
    });
    it('pages with nextToken without repeating or skipping', async () => {
      const created: string[] = [];
      for (let i = 0; i < 5; i++) {
        c.t.clock.advance(1);
        const r = await c.t.api('POST', '/v1/sandboxes', {
          body: { templateId: 'minimal', metadata: { page: 'yes' } },
        });
        created.push(r.body.sandboxId);
      }
      const seen: string[] = [];
      let token: string | null = null;
      let pages = 0;
      do {
        const q: string = `/v1/sandboxes?limit=2&metadata=${encodeURIComponent('page=yes')}${token ? `&nextToken=${token}` : ''}`;
        const r = await c.t.api('GET', q);
        expect(r.status).toBe(200);
        expect(r.body.sandboxes.length).toBeLessThanOrEqual(2);
        seen.push(...r.body.sandboxes.map((s: any) => s.sandboxId));
        token = r.body.nextToken;
        pages++;
      } while (token && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual([...created].reverse()); // newest first
    });
    it('shows another team nothing', async () => {
      const r = await c.t.api('GET', '/v1/sandboxes', { key: c.otherKey });
      expect(r.status).toBe(200);
      expect(r.body.sandboxes).toEqual([]);
    });
    it('rejects bad paging and filter input with 400', async () => {
      expectError(await c.t.api('GET', '/v1/sandboxes?limit=0'), 400, 'invalid_argument');
      expectError(await c.t.api('GET', '/v1/sandboxes?limit=abc'), 400, 'invalid_argument');
      expectError(await c.t.api('GET', '/v1/sandboxes?nextToken=garbage'), 400, 'invalid_argument');
      expectError(await c.t.api('GET', '/v1/sandboxes?status=sleeping'), 400, 'invalid_argument');
    });
  });

  describe('pause / resume / timeout', () => {
    it('pauses, refuses a second pause with 409, resumes, refuses a second resume with 409', async () => {
      const p = await c.t.api('POST', `/v1/sandboxes/${id}/pause`);
      expect(p.status).toBe(200);
      expect(p.body.status).toBe('paused');
      expect(c.agents[0]!.sandboxes.get(id)?.status).toBe(4);
      expectError(await c.t.api('POST', `/v1/sandboxes/${id}/pause`), 409, 'conflict');
      const r = await c.t.api('POST', `/v1/sandboxes/${id}/resume`, {
        body: { timeoutSeconds: 120 },
      });
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('running');
      expect(r.body.timeoutSeconds).toBe(120);
      expectError(await c.t.api('POST', `/v1/sandboxes/${id}/resume`), 409, 'conflict');
    });
    it("cannot pause or resume another team's sandbox (404)", async () => {
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/pause`, { key: c.otherKey }),
        404,
        'not_found',
      );
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/resume`, { key: c.otherKey }),
        404,
        'not_found',
      );
    });
    it('sets the timeout and rejects a negative one', async () => {
      const r = await c.t.api('POST', `/v1/sandboxes/${id}/timeout`, {
        body: { timeoutSeconds: 3600 },
      });
      expect(r.status).toBe(200);
      expect(r.body.timeoutSeconds).toBe(3600);
      expect(Date.parse(r.body.endAt)).toBeGreaterThan(Date.now() + 3000_000);
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/timeout`, { body: { timeoutSeconds: -1 } }),
        400,
        'invalid_argument',
      );
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/timeout`, { body: {} }),
        400,
        'invalid_argument',
      );
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/timeout`, {
          key: c.otherKey,
          body: { timeoutSeconds: 5 },
        }),
        404,
        'not_found',
      );
    });
  });

  describe('exec and files (through the agent proxy to a real envd)', () => {
    it('returns stdout, stderr and the exit code', async () => {
      const r = await c.t.api('POST', `/v1/sandboxes/${id}/exec`, {
        body: { cmd: 'echo out; echo err >&2; exit 7' },
      });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        exitCode: 7,
        stdout: 'out\n',
        stderr: 'err\n',
        stdoutEncoding: 'utf8',
        truncated: false,
      });
    });
    it('runs an exact argv with env and cwd', async () => {
      const r = await c.t.api('POST', `/v1/sandboxes/${id}/exec`, {
        body: {
          argv: ['/bin/sh', '-c', 'echo "$GREETING"; pwd'],
          env: { GREETING: 'hej' },
          cwd: '/tmp',
        },
      });
      expect(r.body.stdout).toBe('hej\n/tmp\n');
    });
    it('returns binary output as base64', async () => {
      const r = await c.t.api('POST', `/v1/sandboxes/${id}/exec`, {
        body: { cmd: "printf '\\377\\000\\376'" },
      });
      expect(r.body.stdoutEncoding).toBe('base64');
      expect([...Buffer.from(r.body.stdout, 'base64')]).toEqual([255, 0, 254]);
    });
    it('gives up on a command that outlives timeoutMs with 504, and kills it', async () => {
      // A unique sleep length marks this process so the check below finds only it.
      const secs = String(100_000 + Math.floor(Math.random() * 100_000));
      const r = await c.t.api('POST', `/v1/sandboxes/${id}/exec`, {
        body: { argv: ['sleep', secs], timeoutMs: 300 },
      });
      expectError(r, 504, 'deadline_exceeded');
      const left = await c.t.api('POST', `/v1/sandboxes/${id}/exec`, {
        body: { cmd: `ps -eo args | grep -c '^sleep ${secs}$' || true` },
      });
      expect(left.body.stdout.trim()).toBe('0');
    });
    it('rejects cmd and argv together, and neither', async () => {
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/exec`, { body: { cmd: 'x', argv: ['x'] } }),
        400,
        'invalid_argument',
      );
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/exec`, { body: {} }),
        400,
        'invalid_argument',
      );
    });
    it("cannot exec in another team's sandbox (404)", async () => {
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${id}/exec`, { key: c.otherKey, body: { cmd: 'id' } }),
        404,
        'not_found',
      );
    });
    it('writes and reads back bytes, and 404s a missing file', async () => {
      const path = `/tmp/wrenn-api-${dialect}-${id}.bin`;
      const data = Buffer.from([0, 1, 2, 250, 251, 255]);
      const w = await fetch(
        `${c.t.url}/v1/sandboxes/${id}/files?path=${encodeURIComponent(path)}`,
        {
          method: 'PUT',
          headers: { 'x-api-key': c.t.adminKey, 'content-type': 'application/octet-stream' },
          body: data,
        },
      );
      expect(w.status).toBe(204);
      const r = await fetch(
        `${c.t.url}/v1/sandboxes/${id}/files?path=${encodeURIComponent(path)}`,
        { headers: { 'x-api-key': c.t.adminKey } },
      );
      expect(r.status).toBe(200);
      expect(Buffer.from(await r.arrayBuffer())).toEqual(data);
      expectError(
        await c.t.api('GET', `/v1/sandboxes/${id}/files?path=/tmp/definitely-not-here-${id}`),
        404,
        'not_found',
      );
      expectError(await c.t.api('GET', `/v1/sandboxes/${id}/files`), 400, 'invalid_argument');
      expectError(
        await c.t.api('GET', `/v1/sandboxes/${id}/files?path=/etc/hostname`, { key: c.otherKey }),
        404,
        'not_found',
      );
    });
    it('refuses exec in a paused sandbox without auto-resume (409)', async () => {
      const s = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal' } });
      await c.t.api('POST', `/v1/sandboxes/${s.body.sandboxId}/pause`);
      expectError(
        await c.t.api('POST', `/v1/sandboxes/${s.body.sandboxId}/exec`, { body: { cmd: 'true' } }),
        409,
        'conflict',
      );
    });
    it('auto-resumes a paused sandbox whose lifecycle asks for it', async () => {
      const s = await c.t.api('POST', '/v1/sandboxes', {
        body: { templateId: 'minimal', lifecycle: { onTimeout: 'pause', autoResume: true } },
      });
      await c.t.api('POST', `/v1/sandboxes/${s.body.sandboxId}/pause`);
      const r = await c.t.api('POST', `/v1/sandboxes/${s.body.sandboxId}/exec`, {
        body: { cmd: 'echo back' },
      });
      expect(r.body.stdout).toBe('back\n');
      expect((await c.t.api('GET', `/v1/sandboxes/${s.body.sandboxId}`)).body.status).toBe(
        'running',
      );
    });
  });

  describe('metrics', () => {
    it('returns points and stores them', async () => {
      const r = await c.t.api('GET', `/v1/sandboxes/${id}/metrics`);
      expect(r.status).toBe(200);
      expect(r.body.points.length).toBeGreaterThan(0);
      expect(r.body.points[0]).toMatchObject({
        cpuUsedPct: 12.5,
        cpuCount: 1,
        memTotalBytes: 512 * 1024 * 1024,
      });
      const stored = await c.t.cp.core.db.kysely
        .selectFrom('metric_points')
        .selectAll()
        .where('sandbox_id', '=', id)
        .execute();
      expect(stored.length).toBe(r.body.points.length);
      expectError(
        await c.t.api('GET', `/v1/sandboxes/${id}/metrics`, { key: c.otherKey }),
        404,
        'not_found',
      );
      expectError(
        await c.t.api('GET', `/v1/sandboxes/${id}/metrics?since=yesterday`),
        400,
        'invalid_argument',
      );
    });
  });

  describe('kill', () => {
    it("refuses another team's kill (404), kills, then 404s a second kill", async () => {
      const s = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal' } });
      const sid = s.body.sandboxId;
      expectError(
        await c.t.api('DELETE', `/v1/sandboxes/${sid}`, { key: c.otherKey }),
        404,
        'not_found',
      );
      expect(c.agents[0]!.sandboxes.has(sid)).toBe(true);
      const k = await c.t.api('DELETE', `/v1/sandboxes/${sid}`);
      expect(k.status).toBe(204);
      expect(c.agents[0]!.sandboxes.has(sid)).toBe(false);
      expect((await c.t.api('GET', `/v1/sandboxes/${sid}`)).body.status).toBe('stopped');
      expectError(await c.t.api('DELETE', `/v1/sandboxes/${sid}`), 404, 'not_found');
      const listed = await c.t.api('GET', '/v1/sandboxes');
      expect(listed.body.sandboxes.map((x: any) => x.sandboxId)).not.toContain(sid);
    });
  });

  describe('errors at the edge', () => {
    it('answers an unknown route with 404 JSON', async () => {
      expectError(await c.t.api('GET', '/v1/nothing-here'), 404, 'not_found');
    });
  });
});
