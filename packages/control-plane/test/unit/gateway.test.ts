import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { processv1 } from '@wrenn/proto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

// The gateway in front of the API: header and host routing to the owning agent's proxy,
// streams both ways without buffering, WebSocket-style upgrades, 502 JSON for unknown or
// paused sandboxes, auto-resume when the lifecycle asks. (SQLite: routing reads one row.)
describe('gateway', () => {
  let c: TestCluster;
  let id: string;
  let token: string;
  const domain = 'sbx.test';
  beforeAll(async () => {
    c = await startTestCluster('sqlite', undefined, { cp: { sandboxDomain: domain } });
    const s = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'base' } });
    id = s.body.sandboxId;
    token = s.body.envdAccessToken;
  });
  afterAll(async () => {
    await c?.close();
  });

  const viaHeaders = (sid: string, path = '/health', port = '49983') =>
    fetch(`${c.t.url}${path}`, {
      headers: { 'E2b-Sandbox-Id': sid, 'E2b-Sandbox-Port': port, 'X-Access-Token': token },
    });

  it('routes by E2b-Sandbox-Id / E2b-Sandbox-Port headers to envd', async () => {
    const r = await viaHeaders(id);
    expect(r.status).toBe(204); // envd's /health, not the control plane's (which is 200 JSON)
  });

  it('routes by a <port>-<id>.<domain> Host', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(c.t.url);
      http
        .get(
          {
            host: u.hostname,
            port: u.port,
            path: '/health',
            headers: { host: `49983-${id}.${domain}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on('error', reject);
    });
    expect(status).toBe(204);
  });

  it('answers 502 JSON for an unknown sandbox', async () => {
    const r = await viaHeaders('nosuchsandbox0000000');
    expect(r.status).toBe(502);
    expect(await r.json()).toEqual({
      code: 'bad_gateway',
      message: expect.stringContaining('not found'),
    });
  });

  it('answers 502 JSON for a paused sandbox without auto-resume, and resumes one with it', async () => {
    const plain = await c.t.api('POST', '/v1/sandboxes', { body: { templateId: 'minimal' } });
    await c.t.api('POST', `/v1/sandboxes/${plain.body.sandboxId}/pause`);
    const r = await viaHeaders(plain.body.sandboxId);
    expect(r.status).toBe(502);
    expect(((await r.json()) as { message: string }).message).toContain('paused');

    const auto = await c.t.api('POST', '/v1/sandboxes', {
      body: { templateId: 'minimal', lifecycle: { onTimeout: 'pause', autoResume: true } },
    });
    await c.t.api('POST', `/v1/sandboxes/${auto.body.sandboxId}/pause`);
    expect(c.agents[0]!.sandboxes.get(auto.body.sandboxId)?.status).toBe(4);
    const resumed = await viaHeaders(auto.body.sandboxId);
    expect(resumed.status).toBe(204);
    expect((await c.t.api('GET', `/v1/sandboxes/${auto.body.sandboxId}`)).body.status).toBe(
      'running',
    );
  });

  it('streams a Connect server stream both ways without buffering', async () => {
    // `cat` never exits until stdin closes: each event can only arrive if the gateway
    // forwards it as it comes (a buffering proxy would hang here and time the test out).
    const transport = createConnectTransport({ baseUrl: c.t.url, httpVersion: '1.1' });
    const client = createClient(processv1.Process, transport);
    const headers = { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '49983', 'X-Access-Token': token };
    const stream = client
      .start(
        create(processv1.StartRequestSchema, { process: { cmd: 'cat', args: [] }, stdin: true }),
        { headers },
      )
      [Symbol.asyncIterator]();
    let pid = 0;
    for (;;) {
      const ev = (await stream.next()).value?.event?.event;
      if (ev?.case === 'start') {
        pid = ev.value.pid;
        break;
      }
    }
    expect(pid).toBeGreaterThan(0);
    const selector = { selector: { case: 'pid' as const, value: pid } };
    await client.sendInput(
      {
        process: selector,
        input: { input: { case: 'stdin', value: new TextEncoder().encode('ping\n') } },
      },
      { headers },
    );
    let echoed = '';
    while (!echoed.includes('ping')) {
      const ev = (await stream.next()).value?.event?.event;
      if (ev?.case === 'data' && ev.value.output.case === 'stdout')
        echoed += new TextDecoder().decode(ev.value.output.value);
    }
    expect(echoed).toBe('ping\n');
    await client.closeStdin({ process: selector }, { headers });
    let exit: number | undefined;
    for (;;) {
      const n = await stream.next();
      if (n.done) break;
      const ev = n.value.event?.event;
      if (ev?.case === 'end') exit = ev.value.exitCode;
    }
    expect(exit).toBe(0);
  });

  it('passes an HTTP Upgrade (WebSocket) through to a user port, bytes both ways', async () => {
    const echo = http.createServer();
    echo.on('upgrade', (_req, socket) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
      socket.pipe(socket);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    c.agents[0]!.userPorts.set(8080, (echo.address() as AddressInfo).port);
    try {
      const u = new URL(c.t.url);
      const reply = await new Promise<string>((resolve, reject) => {
        const req = http.request({
          host: u.hostname,
          port: u.port,
          path: '/ws',
          headers: {
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'E2b-Sandbox-Id': id,
            'E2b-Sandbox-Port': '8080',
          },
        });
        req.on('upgrade', (res, socket) => {
          expect(res.statusCode).toBe(101);
          socket.write('hello through the gateway');
          socket.once('data', (d) => {
            resolve(d.toString());
            socket.destroy();
          });
        });
        req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
        req.on('error', reject);
        req.end();
      });
      expect(reply).toBe('hello through the gateway');
    } finally {
      echo.close();
    }
  });

  it('leaves API requests (no sandbox headers) to the API', async () => {
    const r = await fetch(`${c.t.url}/health`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ status: 'ok' });
  });
});
