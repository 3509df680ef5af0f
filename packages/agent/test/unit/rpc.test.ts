import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { layout } from '@wrenn/common';
import { agentv1 } from '@wrenn/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningAgent, startAgent } from '../../src/agent.ts';
import { FakeDriver } from '../support/fake-driver.ts';
import { fabricateWrennDir, nextPortBase, removeWrennDir, silentLog } from '../support/fixtures.ts';

const TOKEN = 'host-token-for-tests';
let dir: string;
let agent: RunningAgent;

const clientWith = (token?: string) =>
  createClient(
    agentv1.AgentService,
    createConnectTransport({
      baseUrl: agent.url,
      httpVersion: '1.1',
      interceptors: token
        ? [
            (next) => async (req) => {
              req.header.set('x-wrenn-host-token', token);
              return next(req);
            },
          ]
        : [],
    }),
  );

async function codeOf(p: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

beforeAll(async () => {
  dir = await fabricateWrennDir();
  agent = await startAgent({
    dir,
    hostToken: TOKEN,
    driver: new FakeDriver(),
    portBase: nextPortBase(),
    maxSlots: 8,
    log: silentLog,
    reaperIntervalMs: 50,
    drainTimeoutMs: 300,
  });
});
afterAll(async () => {
  await agent.close();
  await FakeDriver.killAll();
  await removeWrennDir(dir);
});

describe('RPC API over real HTTP', () => {
  it('refuses requests without the right host token (Connect unauthenticated)', async () => {
    expect(await codeOf(clientWith().list({}))).toBe(Code.Unauthenticated);
    expect(await codeOf(clientWith('wrong').list({}))).toBe(Code.Unauthenticated);
  });

  it('bad input gets the right code and nothing half-created remains', async () => {
    const c = clientWith(TOKEN);
    expect(await codeOf(c.pause({ sandboxId: 'nosuch' }))).toBe(Code.NotFound);
    expect(await codeOf(c.destroy({ sandboxId: 'nosuch' }))).toBe(Code.NotFound);
    expect(await codeOf(c.resume({ sandboxId: 'nosuch' }))).toBe(Code.NotFound);
    expect(await codeOf(c.getMetrics({ sandboxId: 'nosuch' }))).toBe(Code.NotFound);
    expect(await codeOf(c.pause({ sandboxId: 'Not A Valid Id' }))).toBe(Code.InvalidArgument);
    expect(
      await codeOf(c.create({ sandboxId: 'big', teamId: 't', templateId: 'minimal', vcpus: 64 })),
    ).toBe(Code.InvalidArgument);
    expect(
      await codeOf(
        c.create({ sandboxId: 'big', teamId: 't', templateId: 'minimal', memoryMb: 64 }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await codeOf(c.create({ sandboxId: 'notpl', teamId: 't', templateId: 'nope' }))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(c.setTimeout({ sandboxId: 'nosuch', timeoutSeconds: 5 }))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(c.deleteTemplate({ teamId: 'public', templateId: 'nope' }))).toBe(
      Code.NotFound,
    );
    expect((await c.list({})).sandboxes).toEqual([]);
    expect(await readdir(layout(dir).sandboxes)).toEqual([]);
  });

  it('create → list → pause → pause again (failed precondition) → resume → destroy', async () => {
    const c = clientWith(TOKEN);
    const created = await c.create({
      sandboxId: 'rpc1',
      teamId: 'team1',
      templateId: 'minimal',
      metadata: { k: 'v' },
      timeoutSeconds: 300,
    });
    expect(created.sandbox?.status).toBe(agentv1.SandboxStatus.RUNNING);
    expect(created.sandbox?.metadata).toEqual({ k: 'v' });
    expect(Number(created.sandbox?.endAtMs)).toBeGreaterThan(Date.now());
    expect(
      await codeOf(c.create({ sandboxId: 'rpc1', teamId: 'team1', templateId: 'minimal' })),
    ).toBe(Code.AlreadyExists);
    const listed = await c.list({});
    expect(listed.sandboxes.map((s) => s.sandboxId)).toEqual(['rpc1']);

    const paused = await c.pause({ sandboxId: 'rpc1' });
    expect(paused.sandbox?.status).toBe(agentv1.SandboxStatus.PAUSED);
    expect(await codeOf(c.pause({ sandboxId: 'rpc1' }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(c.deleteTemplate({ teamId: 'public', templateId: 'minimal' }))).toBe(
      Code.FailedPrecondition,
    );
    const resumed = await c.resume({ sandboxId: 'rpc1', timeoutSeconds: 30 });
    expect(resumed.sandbox?.status).toBe(agentv1.SandboxStatus.RUNNING);
    expect(resumed.sandbox?.slot).toBe(created.sandbox?.slot);
    await c.destroy({ sandboxId: 'rpc1' });
    expect((await c.list({})).sandboxes).toEqual([]);
  });

  it('reports host status and auto-paused ids once', async () => {
    const c = clientWith(TOKEN);
    await c.create({
      sandboxId: 'auto1',
      teamId: 't',
      templateId: 'minimal',
      timeoutSeconds: 3600,
      timeoutAction: agentv1.TimeoutAction.PAUSE,
    });
    const hs = await c.hostStatus({});
    expect(hs.sandboxesRunning).toBe(1);
    expect(hs.vcpusUsed).toBe(1);
    // Make its time run out now; the agent's reaper pauses it.
    agent.manager.get('auto1').endAt = Date.now() - 1;
    let ids: string[] = [];
    for (let i = 0; i < 200 && ids.length === 0; i++) {
      ids = (await c.list({})).autoPausedIds;
      if (ids.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ids).toEqual(['auto1']);
    const again = await c.list({});
    expect(again.autoPausedIds).toEqual([]);
    expect(again.sandboxes.find((s) => s.sandboxId === 'auto1')?.status).toBe(
      agentv1.SandboxStatus.PAUSED,
    );
    await c.destroy({ sandboxId: 'auto1' });
  });
});

describe('proxy', () => {
  const proxyFetch = (path: string, init: RequestInit = {}, token: string | undefined = TOKEN) =>
    fetch(`${agent.url}${path}`, {
      ...init,
      headers: {
        ...(token ? { 'x-wrenn-host-token': token } : {}),
        ...(init.headers as Record<string, string>),
      },
    });

  it('forwards method, path, query, headers and body to the sandbox port, minus the host token', async () => {
    const c = clientWith(TOKEN);
    await c.create({ sandboxId: 'px1', teamId: 't', templateId: 'minimal' });
    const res = await proxyFetch('/proxy/px1/49983/some/path?q=1&r=two', {
      method: 'POST',
      body: 'hello body',
      headers: { 'x-custom': 'yes' },
    });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as {
      url: string;
      method: string;
      headers: Record<string, string>;
      body: string;
    };
    expect(echo.url).toBe('/some/path?q=1&r=two');
    expect(echo.method).toBe('POST');
    expect(echo.body).toBe('hello body');
    expect(echo.headers['x-custom']).toBe('yes');
    expect(echo.headers['x-wrenn-host-token']).toBeUndefined();
    // A user port goes through the driver's forwardPort.
    const user = await proxyFetch('/proxy/px1/8080/');
    expect(((await user.json()) as { url: string }).url).toBe('/');
  });

  it('passes WebSocket-style upgrades through both ways', async () => {
    const { port } = new URL(agent.url);
    const sock = connect(Number(port), '127.0.0.1');
    const got = await new Promise<string>((resolve, reject) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('ping-through-proxy')) resolve(buf);
        else if (buf.includes('\r\n\r\n') && buf.startsWith('HTTP/1.1 101'))
          sock.write('ping-through-proxy');
      });
      sock.on('error', reject);
      sock.write(
        `GET /proxy/px1/49983/ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\nx-wrenn-host-token: ${TOKEN}\r\n\r\n`,
      );
    });
    sock.destroy();
    expect(got).toMatch(/^HTTP\/1.1 101/);
    expect(got).toContain('ping-through-proxy');
  });

  it('answers 401 JSON without the token, 502 JSON for unknown or paused sandboxes, 400 for a bad path', async () => {
    const noTok = await proxyFetch('/proxy/px1/49983/', {}, '');
    expect(noTok.status).toBe(401);
    expect(await noTok.json()).toMatchObject({ code: 'unauthenticated' });
    const unknown = await proxyFetch('/proxy/ghost/49983/');
    expect(unknown.status).toBe(502);
    expect(await unknown.json()).toMatchObject({ code: 'bad_gateway' });
    const badPort = await proxyFetch('/proxy/px1/99999/');
    expect(badPort.status).toBe(400);
    expect(await badPort.json()).toMatchObject({ code: 'invalid_argument' });
    await clientWith(TOKEN).pause({ sandboxId: 'px1' });
    const paused = await proxyFetch('/proxy/px1/49983/');
    expect(paused.status).toBe(502);
    expect(((await paused.json()) as { message: string }).message).toMatch(/paused/);
  });

  it('a pause drains a long-running proxied stream (aborting it at the deadline)', async () => {
    const c = clientWith(TOKEN);
    await c.create({ sandboxId: 'px2', teamId: 't', templateId: 'minimal' });
    const res = await proxyFetch('/proxy/px2/49983/slow');
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('streaming\n');
    expect(agent.manager.get('px2').conns.inFlight).toBe(1);
    await c.pause({ sandboxId: 'px2' });
    await expect(reader.read()).rejects.toThrow();
    expect(agent.manager.get('px2').conns.inFlight).toBe(0);
  });
});
