import { createServer, type IncomingMessage, type Server } from 'node:http';
import { freeLoopbackPort } from '@wrenn/common';
import { afterEach, describe, expect, it } from 'vitest';
import { initEnvdWhenReady, waitEnvdHealthy } from '../../src/envd-client.ts';

/** A stand-in for envd's /init: token rules as envd has them, real HTTP on loopback. */
function fakeEnvd(opts: { dropFirstAnswer?: boolean; status?: number } = {}) {
  let token: string | undefined;
  const bodies: Record<string, unknown>[] = [];
  let dropped = false;
  const server = createServer(async (req: IncomingMessage, res) => {
    let text = '';
    for await (const c of req) text += c;
    if (req.url === '/health') return void res.writeHead(204).end();
    if (opts.status) return void res.writeHead(opts.status).end('broken');
    if (token && req.headers['x-access-token'] !== token) return void res.writeHead(401).end();
    const body = JSON.parse(text) as { accessToken?: string };
    bodies.push(body);
    token = body.accessToken || undefined;
    if (opts.dropFirstAnswer && !dropped) {
      dropped = true;
      return void req.socket.destroy(); // applied, but the answer is lost
    }
    res.writeHead(204).end();
  });
  return { server, bodies };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function listenLater(server: Server, port: number, afterMs: number) {
  servers.push(server);
  await new Promise((r) => setTimeout(r, afterMs));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
}

describe('initEnvdWhenReady (POST /init as the readiness probe)', () => {
  it('retries until envd listens, then sends env, token and a current timestamp', async () => {
    const port = await freeLoopbackPort();
    const { server, bodies } = fakeEnvd();
    const up = listenLater(server, port, 150);
    const before = Date.now();
    await initEnvdWhenReady(port, { envVars: { A: '1' }, accessToken: 'tok' }, undefined, 10_000);
    await up;
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({ envVars: { A: '1' }, accessToken: 'tok' });
    // Read when the attempt was made, i.e. after envd came up, not when waiting began.
    expect(Date.parse(String(bodies[0]!.timestamp))).toBeGreaterThanOrEqual(before + 100);
  });

  it('an attempt that landed but lost its answer is retried with the new token', async () => {
    const port = await freeLoopbackPort();
    const { server, bodies } = fakeEnvd({ dropFirstAnswer: true });
    await listenLater(server, port, 0);
    await initEnvdWhenReady(port, { envVars: {}, accessToken: 'new' }, undefined, 10_000);
    expect(bodies.map((b) => b.accessToken)).toEqual(['new', 'new']);
  });

  it('an HTTP error is the answer: no retry, a clear unavailable error', async () => {
    const port = await freeLoopbackPort();
    const { server } = fakeEnvd({ status: 500 });
    await listenLater(server, port, 0);
    await expect(initEnvdWhenReady(port, { envVars: {} }, undefined, 10_000)).rejects.toMatchObject(
      { code: 'unavailable', message: expect.stringMatching(/\/init: HTTP 500 broken/) },
    );
  });

  it('nobody listening: deadline_exceeded naming the last error', async () => {
    const port = await freeLoopbackPort();
    await expect(initEnvdWhenReady(port, { envVars: {} }, undefined, 300)).rejects.toMatchObject({
      code: 'deadline_exceeded',
      message: expect.stringMatching(/POST \/init within 300 ms/),
    });
    await expect(waitEnvdHealthy(port, 300)).rejects.toMatchObject({
      code: 'deadline_exceeded',
    });
  });
});
