import { Agent, get } from 'node:http';
import type { Socket } from 'node:net';
import type { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostEnvd, sdk, startHostEnvd } from '../helpers.ts';

let envd: HostEnvd;
let sbx: Sandbox;

beforeAll(async () => {
  envd = await startHostEnvd();
  sbx = sdk(envd);
});
afterAll(async () => {
  await envd?.stop();
});

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${envd.url}${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });

describe('plain HTTP routes', () => {
  it('GET /health is 204', async () => {
    expect((await fetch(`${envd.url}/health`)).status).toBe(204);
  });

  it('unknown routes are JSON 404s', async () => {
    const r = await fetch(`${envd.url}/nope`);
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ code: 'not_found', message: 'no route for GET /nope' });
  });

  it('/init rejects bad JSON and bad fields with invalid_argument, changing nothing', async () => {
    const r = await post('/init', '{"envVars": ');
    expect(r.status).toBe(400);
    expect(((await r.json()) as { code: string }).code).toBe('invalid_argument');
    const t = await post('/init', JSON.stringify({ envVars: { A: '1' }, timestamp: 'yesterday' }));
    expect(t.status).toBe(400);
    expect(await (await fetch(`${envd.url}/envs`)).json()).toEqual({});
    const n = await post('/init', JSON.stringify({ envVars: { A: 1 } }));
    expect(n.status).toBe(400);
  });

  it('/init env vars reach /envs and every later process; request envs win', async () => {
    const r = await post(
      '/init',
      JSON.stringify({
        envVars: { WRENN_A: 'from-init', WRENN_B: 'b' },
        timestamp: new Date().toISOString(),
      }),
    );
    expect(r.status).toBe(204);
    expect(await (await fetch(`${envd.url}/envs`)).json()).toEqual({
      WRENN_A: 'from-init',
      WRENN_B: 'b',
    });
    const out = await sbx.commands.run('echo $WRENN_A $WRENN_B', { envs: { WRENN_B: 'override' } });
    expect(out.stdout).toBe('from-init override\n');
  });

  it('/init defaultWorkdir becomes the default cwd', async () => {
    expect((await post('/init', JSON.stringify({ defaultWorkdir: '/tmp' }))).status).toBe(204);
    expect((await sbx.commands.run('pwd')).stdout).toBe('/tmp\n');
  });

  it('GET /metrics reports CPU, memory and disk', async () => {
    const m = (await (await fetch(`${envd.url}/metrics`)).json()) as Record<string, number>;
    expect(m.cpu_count).toBeGreaterThan(0);
    expect(m.cpu_used_pct).toBeGreaterThanOrEqual(0);
    expect(m.cpu_used_pct).toBeLessThanOrEqual(100);
    expect(m.mem_total).toBeGreaterThan(m.mem_used);
    expect(m.mem_used).toBeGreaterThan(0);
    expect(m.mem_total_mib).toBe(Math.floor(m.mem_total / 2 ** 20));
    expect(m.disk_total).toBeGreaterThan(m.disk_used);
    expect(m.disk_used).toBeGreaterThan(0);
  });

  it('POST /snapshot/prepare quiesces and envd keeps serving afterwards', async () => {
    expect((await post('/snapshot/prepare', '')).status).toBe(204);
    expect((await sbx.commands.run('echo after')).stdout).toBe('after\n');
  });

  it('/init drops idle keep-alive connections (dead after a restore) and answers on its own', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const idle = await new Promise<Socket>((resolve, reject) => {
      const req = get(`${envd.url}/health`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.socket as Socket));
      });
      req.on('error', reject);
    });
    expect(idle.destroyed).toBe(false);
    const closed = new Promise((r) => idle.once('close', r));
    expect((await post('/init', '{}')).status).toBe(204);
    await closed;
    expect(idle.destroyed).toBe(true);
    agent.destroy();
    expect((await sbx.commands.run('echo after init')).stdout).toBe('after init\n');
  });

  it('once a token is set everything but /health needs it, and only its holder may rotate it', async () => {
    expect((await post('/init', JSON.stringify({ accessToken: 'tok-1' }))).status).toBe(204);
    expect((await fetch(`${envd.url}/envs`)).status).toBe(401);
    expect((await fetch(`${envd.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${envd.url}/health`)).status).toBe(204);
    // a stranger cannot replace the token
    expect((await post('/init', JSON.stringify({ accessToken: 'stolen' }))).status).toBe(401);
    expect(
      (await post('/init', JSON.stringify({ accessToken: 'tok-2' }), { 'X-Access-Token': 'tok-1' }))
        .status,
    ).toBe(204);
    expect(
      (await fetch(`${envd.url}/envs`, { headers: { 'X-Access-Token': 'tok-2' } })).status,
    ).toBe(200);
    const withToken = sdk(envd, { accessToken: 'tok-2' });
    expect((await withToken.commands.run('echo ok')).stdout).toBe('ok\n');
    await expect(sbx.commands.run('echo no')).rejects.toThrow(/X-Access-Token/);
  });
});
