import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentv1 } from '@wrenn/proto';
import * as e2bNew from 'e2b';
import * as e2bOld from 'e2b-246';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../../test/support/cluster.ts';
import { httpsGet } from '../../test/support/https-get.ts';
import { E2B_ENVD_VERSION } from './map.ts';
import { serveSandboxTls } from './tls.ts';

/**
 * The E2B REST contract at the wire and through both pinned SDKs, on a control plane with
 * a fake agent in front of one real envd (fast; no VMs). The VM-level compatibility suite
 * is test/e2b/compat.test.ts.
 */
const DOMAIN = 'sbx.wrenn.test';
let c: TestCluster;
let key: string;

beforeAll(async () => {
  c = await startTestCluster('sqlite', undefined, { cp: { sandboxDomain: DOMAIN } });
  const k = await c.t.api('POST', '/v1/keys', { body: { name: 'e2b', teamId: 'e2b-unit' } });
  key = k.body.key;
});
afterAll(async () => {
  await c?.close();
});

const e2b = (path: string, method = 'GET', body?: unknown, k: string | null = key) =>
  c.t.api(method, path, { key: k, ...(body !== undefined ? { body } : {}) });

describe('E2B wire contract', () => {
  it('create (both paths) answers 201 with E2B field names and envdVersion 0.6.x', async () => {
    for (const path of ['/sandboxes', '/v2/sandboxes']) {
      const r = await e2b(path, 'POST', {
        templateID: 'base',
        timeout: 60,
        metadata: { m: '1' },
        envVars: { A: 'b' },
        secure: true,
        allow_internet_access: true,
      });
      expect(r.status).toBe(201);
      expect(Object.keys(r.body).sort()).toEqual([
        'alias',
        'clientID',
        'domain',
        'envdAccessToken',
        'envdVersion',
        'sandboxID',
        'templateID',
      ]);
      expect(r.body.templateID).toBe('base');
      expect(r.body.envdVersion).toMatch(/^0\.6\.\d+$/);
      expect(r.body.envdVersion).toBe(E2B_ENVD_VERSION);
      expect(r.body.envdAccessToken.length).toBeGreaterThan(16);
    }
  });

  it('errors are {code: <status>, message} for auth, validation, unknown ids and unknown templates', async () => {
    const noKey = await e2b('/v2/sandboxes', 'GET', undefined, null);
    expect(noKey.status).toBe(401);
    expect(noKey.body).toEqual({ code: 401, message: expect.any(String) });
    const badKey = await e2b('/v2/sandboxes', 'GET', undefined, 'wrn_nope');
    expect(badKey.body.code).toBe(401);
    const bad = await e2b('/v2/sandboxes', 'POST', { templateID: 'base', timeout: 'soon' });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe(400);
    expect(bad.body.message).toContain('timeout');
    const unknownTpl = await e2b('/v2/sandboxes', 'POST', { templateID: 'no-such-template' });
    expect(unknownTpl.status).toBe(404);
    expect(unknownTpl.body).toEqual({
      code: 404,
      message: "template 'no-such-template' not found",
    });
    for (const id of ['doesnotexist', 'Not_A_Valid_Id']) {
      for (const [method, path] of [
        ['GET', `/sandboxes/${id}`],
        ['DELETE', `/sandboxes/${id}`],
        ['POST', `/sandboxes/${id}/pause`],
        ['POST', `/v2/sandboxes/${id}/connect`],
      ] as const) {
        const r = await e2b(path, method, method === 'POST' ? {} : undefined);
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.body.code).toBe(404);
        expect(JSON.stringify(r.body)).not.toContain('    at ');
      }
    }
  });

  it('/openapi.json lists the E2B routes beside the native ones', async () => {
    const doc = await c.t.api('GET', '/openapi.json', { key: null });
    expect(doc.status).toBe(200);
    for (const path of [
      '/sandboxes',
      '/v2/sandboxes',
      '/sandboxes/{sandboxID}',
      '/v2/sandboxes/{sandboxID}/connect',
      '/sandboxes/{sandboxID}/metrics',
      '/snapshots',
      '/v1/sandboxes',
    ]) {
      expect(Object.keys(doc.body.paths), path).toContain(path);
    }
    expect(doc.body.paths['/v2/sandboxes'].post.requestBody).toBeDefined();
  });

  it('refuses what Wrenn cannot do instead of ignoring it', async () => {
    for (const extra of [
      { allow_internet_access: false },
      { mcp: { x: {} } },
      { volumeMounts: [{ name: 'v', path: '/v' }] },
      { autoPause: true, autoPauseMemory: false },
    ]) {
      const r = await e2b('/v2/sandboxes', 'POST', { templateID: 'base', ...extra });
      expect(r.status, JSON.stringify(extra)).toBe(400);
      expect(r.body.message).toContain('not supported');
    }
  });

  it('connect answers 200 when running and 201 when it resumed; pause answers 409 when already paused; kill 204 then 404', async () => {
    const id = (await e2b('/v2/sandboxes', 'POST', { templateID: 'base', timeout: 600 })).body
      .sandboxID;
    expect((await e2b(`/v2/sandboxes/${id}/connect`, 'POST', { timeout: 10 })).status).toBe(200);
    expect((await e2b(`/sandboxes/${id}/pause`, 'POST', {})).status).toBe(204);
    expect((await e2b(`/sandboxes/${id}/pause`, 'POST', {})).status).toBe(409);
    expect((await e2b(`/sandboxes/${id}`)).body.state).toBe('paused');
    const resumed = await e2b(`/sandboxes/${id}/connect`, 'POST', { timeout: 60 });
    expect(resumed.status).toBe(201);
    expect(resumed.body.sandboxID).toBe(id);
    expect((await e2b(`/sandboxes/${id}/resume`, 'POST', {})).status).toBe(200);
    expect((await e2b(`/sandboxes/${id}`, 'DELETE')).status).toBe(204);
    expect((await e2b(`/sandboxes/${id}`, 'DELETE')).status).toBe(404);
    expect((await e2b(`/sandboxes/${id}`)).status).toBe(404);
  });

  it('connect, setTimeout and pause wait out a pause in flight instead of failing', async () => {
    const id = (await e2b('/v2/sandboxes', 'POST', { templateID: 'base', autoPause: true })).body
      .sandboxID;
    const setStatus = (status: 'pausing' | 'paused') =>
      c.t.cp.core.db.kysely.updateTable('sandboxes').set({ status }).where('id', '=', id).execute();
    // The agent's reaper paused it; the control plane has seen the pause start, not end.
    c.agents[0]!.autoPause(id);
    await setStatus('pausing');
    expect((await e2b(`/sandboxes/${id}`)).body.state).toBe('paused');
    const pause = e2b(`/sandboxes/${id}/pause`, 'POST', {});
    const timeout = e2b(`/sandboxes/${id}/timeout`, 'POST', { timeout: 900 });
    let settledYet = false;
    const connect = e2b(`/v2/sandboxes/${id}/connect`, 'POST', {}).then((r) => ({
      ...r,
      settledYet,
    }));
    await new Promise((r) => setTimeout(r, 500));
    settledYet = true;
    await setStatus('paused');
    expect((await pause).status).toBe(409);
    expect((await timeout).status).toBe(204);
    const connected = await connect;
    expect(connected.status).toBe(201);
    expect(connected.settledYet).toBe(true);
    expect((await e2b(`/sandboxes/${id}`)).body.state).toBe('running');
    await e2b(`/sandboxes/${id}`, 'DELETE');
  });

  it("the agent's own timeout pause shows as paused once done, not stuck in pausing", async () => {
    const id = (await e2b('/v2/sandboxes', 'POST', { templateID: 'base', autoPause: true })).body
      .sandboxID;
    const onAgent = c.agents[0]!.sandboxes.get(id)!;
    onAgent.status = agentv1.SandboxStatus.PAUSING;
    await c.t.cp.core.reconciler.runOnce();
    expect((await e2b(`/sandboxes/${id}`)).body.state).toBe('running');
    c.agents[0]!.autoPause(id);
    await c.t.cp.core.reconciler.runOnce();
    expect(
      (
        await c.t.cp.core.db.kysely
          .selectFrom('sandboxes')
          .select('status')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).status,
    ).toBe('paused');
    expect((await e2b(`/v2/sandboxes/${id}/connect`, 'POST', {})).status).toBe(201);
    await e2b(`/sandboxes/${id}`, 'DELETE');
  });

  it('connect extends end-at and never shortens it', async () => {
    const id = (await e2b('/v2/sandboxes', 'POST', { templateID: 'base', timeout: 600 })).body
      .sandboxID;
    const endAt = () => e2b(`/sandboxes/${id}`).then((r) => Date.parse(r.body.endAt));
    const before = await endAt();
    await e2b(`/v2/sandboxes/${id}/connect`, 'POST', { timeout: 5 });
    expect(await endAt()).toBe(before);
    await e2b(`/v2/sandboxes/${id}/connect`, 'POST', { timeout: 3600 });
    expect(await endAt()).toBeGreaterThan(before);
    await e2b(`/sandboxes/${id}`, 'DELETE');
  });

  it('v2 list pages with x-next-token and filters by metadata (SDK double encoding) and state', async () => {
    const tag = `page-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (
          await e2b('/v2/sandboxes', 'POST', {
            templateID: 'base',
            metadata: { tag, 'k y': 'v&=w' },
          })
        ).body.sandboxID,
      );
    }
    await e2b(`/sandboxes/${ids[0]}/pause`, 'POST', {});
    const metadata = encodeURIComponent(
      new URLSearchParams({
        tag,
        [encodeURIComponent('k y')]: encodeURIComponent('v&=w'),
      }).toString(),
    );
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const r = await e2b(
        `/v2/sandboxes?metadata=${metadata}&limit=2${next ? `&nextToken=${encodeURIComponent(next)}` : ''}`,
      );
      expect(r.status).toBe(200);
      expect(r.body.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.map((s: { sandboxID: string }) => s.sandboxID));
      next = r.headers.get('x-next-token');
    } while (next);
    expect(seen.sort()).toEqual([...ids].sort());
    const paused = await e2b(`/v2/sandboxes?metadata=${metadata}&state=paused`);
    expect(paused.body.map((s: { sandboxID: string }) => s.sandboxID)).toEqual([ids[0]]);
    const v1 = await e2b(`/sandboxes?metadata=${metadata}`);
    expect(v1.body.map((s: { sandboxID: string }) => s.sandboxID).sort()).toEqual(
      [ids[1], ids[2]].sort(),
    );
    expect((await e2b('/v2/sandboxes?state=sleeping')).status).toBe(400);
    const byTemplate = async (t: string) =>
      (await e2b(`/v2/sandboxes?metadata=${metadata}&template=${t}`)).body.length;
    expect(await byTemplate('base')).toBe(3);
    expect(await byTemplate('minimal')).toBe(0);
    const startedAt = (await e2b(`/sandboxes/${ids[2]}`)).body.startedAt as string;
    const after = async (iso: string) =>
      (await e2b(`/v2/sandboxes?metadata=${metadata}&startedAfter=${encodeURIComponent(iso)}`)).body
        .length;
    expect(await after(startedAt)).toBeGreaterThanOrEqual(1);
    expect(await after(new Date(Date.parse(startedAt) + 3_600_000).toISOString())).toBe(0);
    expect((await e2b('/v2/sandboxes?order=asc')).status).toBe(400);
    expect((await e2b('/v2/sandboxes?order=desc')).status).toBe(200);
    for (const id of ids) await e2b(`/sandboxes/${id}`, 'DELETE');
  });
});

// The two SDKs' classes differ in private members only; type both as the current one.
const SDKS: [string, typeof e2bNew][] = [
  ['2.51.0', e2bNew],
  ['2.46.1', e2bOld as unknown as typeof e2bNew],
];

describe('domain mode over TLS', () => {
  it('serves <port>-<id>.<domain> and api.<domain> with a generated self-signed certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wrenn-tls-'));
    const tls = await serveSandboxTls(c.t.cp.server, { domain: DOMAIN, port: 0, dir });
    try {
      const created = await e2b('/v2/sandboxes', 'POST', { templateID: 'base' });
      expect(created.body.domain).toBe(DOMAIN);
      const id = created.body.sandboxID;
      const health = await httpsGet(tls.port, `49983-${id}.${DOMAIN}`, '/health', tls.certPem);
      expect(health.status).toBe(204);
      const gone = await httpsGet(
        tls.port,
        `49983-nosuchsandbox.${DOMAIN}`,
        '/health',
        tls.certPem,
      );
      expect(gone.status).toBe(502);
      expect(JSON.parse(gone.body)).toMatchObject({
        message: expect.stringContaining('not found'),
      });
      const api = await httpsGet(tls.port, `api.${DOMAIN}`, '/health', tls.certPem);
      expect(api.status).toBe(200);
      // An untrusted client refuses the self-signed certificate: it is really TLS.
      await expect(httpsGet(tls.port, `api.${DOMAIN}`, '/health', '')).rejects.toThrow();
      // The pair is kept and reused.
      const again = await serveSandboxTls(c.t.cp.server, { domain: DOMAIN, port: 0, dir });
      expect(again.certPem).toBe(tls.certPem);
      await again.close();
      await e2b(`/sandboxes/${id}`, 'DELETE');
    } finally {
      await tls.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a full host', () => {
  it('pause then an immediate connect, and kill then an immediate create, find the freed room before the next heartbeat', async () => {
    const full = await startTestCluster('sqlite', undefined, {
      capacity: { vcpus: 1, memoryMb: 1024, diskMb: 65536 },
    });
    try {
      const k = (
        await full.t.api('POST', '/v1/keys', { body: { name: 'e2b', teamId: 'e2b-full' } })
      ).body.key;
      const call = (path: string, body: unknown = {}) => full.t.api('POST', path, { key: k, body });
      const id = (await call('/v2/sandboxes', { templateID: 'base' })).body.sandboxID;
      // The agent now reports the host's only vCPU as used, and reports nothing more until
      // the next heartbeat (none is sent below).
      await full.heartbeatAll();
      expect((await call('/v2/sandboxes', { templateID: 'base' })).status).toBe(503);
      expect((await call(`/sandboxes/${id}/pause`)).status).toBe(204);
      expect((await call(`/v2/sandboxes/${id}/connect`)).status).toBe(201);
      expect((await full.t.api('DELETE', `/sandboxes/${id}`, { key: k })).status).toBe(204);
      expect((await call('/v2/sandboxes', { templateID: 'base' })).status).toBe(201);
    } finally {
      await full.close();
    }
  });
});

for (const [version, sdk] of SDKS) {
  describe(`e2b ${version} against the REST edge`, () => {
    const opts = () => ({ apiKey: key, apiUrl: c.t.url, sandboxUrl: c.t.url });

    it('create, getInfo, list, setTimeout, connect, pause, kill', async () => {
      const sbx = await sdk.Sandbox.create('base', {
        ...opts(),
        metadata: { sdk: version },
        timeoutMs: 120_000,
      });
      const info = await sbx.getInfo();
      expect(info).toMatchObject({
        sandboxId: sbx.sandboxId,
        templateId: 'base',
        metadata: { sdk: version },
        state: 'running',
        envdVersion: E2B_ENVD_VERSION,
      });
      expect(info.endAt.getTime() - info.startedAt.getTime()).toBeGreaterThanOrEqual(119_000);
      const listed = await sdk.Sandbox.list({
        ...opts(),
        query: { metadata: { sdk: version } },
      }).nextItems();
      expect(listed.map((s) => s.sandboxId)).toEqual([sbx.sandboxId]);
      await sbx.setTimeout(900_000);
      expect((await sbx.getInfo()).endAt.getTime()).toBeGreaterThan(info.endAt.getTime());
      expect(await sbx.pause()).toBe(true);
      expect(await sbx.pause()).toBe(false);
      expect(await sbx.isRunning()).toBe(false);
      const again = await sdk.Sandbox.connect(sbx.sandboxId, opts());
      expect(await again.isRunning()).toBe(true);
      expect(await sbx.kill()).toBe(true);
      expect(await sdk.Sandbox.kill(sbx.sandboxId, opts())).toBe(false);
      await expect(sdk.Sandbox.getInfo(sbx.sandboxId, opts())).rejects.toBeInstanceOf(
        sdk.SandboxNotFoundError,
      );
      await expect(sdk.Sandbox.connect(sbx.sandboxId, opts())).rejects.toBeInstanceOf(
        sdk.SandboxNotFoundError,
      );
    });

    it('createSnapshot makes a template new sandboxes start from; listSnapshots and deleteSnapshot', async () => {
      const name = `snap-${version.replaceAll('.', '-')}`;
      const sbx = await sdk.Sandbox.create('base', opts());
      const snap = await sbx.createSnapshot({ name });
      expect(snap).toEqual({ snapshotId: name, names: [name] });
      const child = await sdk.Sandbox.create(snap.snapshotId, opts());
      expect((await child.getInfo()).templateId).toBe(name);
      const listed = await sdk.Sandbox.listSnapshots({
        ...opts(),
        sandboxId: sbx.sandboxId,
      }).nextItems();
      expect(listed.map((s) => s.snapshotId)).toEqual([name]);
      await child.kill();
      expect(await sdk.Sandbox.deleteSnapshot(name, opts())).toBe(true);
      expect(await sdk.Sandbox.deleteSnapshot(name, opts())).toBe(false);
      expect(
        await sdk.Sandbox.listSnapshots({ ...opts(), sandboxId: sbx.sandboxId }).nextItems(),
      ).toEqual([]);
      await sbx.kill();
    });

    it('an unknown template is a 404 SandboxError and a bad key an AuthenticationError', async () => {
      const err = await sdk.Sandbox.create('no-such-template', opts()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(sdk.SandboxError);
      expect((err as Error).message).toBe("404: template 'no-such-template' not found");
      await expect(
        sdk.Sandbox.create('base', { ...opts(), apiKey: 'wrn_invalid' }),
      ).rejects.toBeInstanceOf(sdk.AuthenticationError);
    });
  });
}
