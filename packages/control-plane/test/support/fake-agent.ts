import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { defaultOptions, type RunningEnvd, startEnvd } from '@wrenn/envd';
import { agentv1 } from '@wrenn/proto';

/**
 * An in-process stand-in for the host agent, for API tests only: it implements the
 * AgentService contract over real Connect/HTTP and the `/proxy/<id>/<port>/` forwarder in
 * front of ONE real envd running on this host (every fake sandbox shares it). It never
 * proves that VMs work — the integration and e2e tests use the real agent for that.
 */
export interface FakeAgent {
  url: string;
  hostToken: string;
  hostId: string;
  sandboxes: Map<string, agentv1.SandboxInfo>;
  /** IDs the next List reports as auto-paused (and marks paused). */
  autoPause(id: string): void;
  /** Agent-side kill (TTL reaper), invisible to the control plane until it reconciles. */
  drop(id: string): void;
  register(cpUrl: string, registrationToken: string): Promise<void>;
  heartbeat(cpUrl: string): Promise<Response>;
  calls: string[];
  /** In-sandbox port → port on this host, for user-port traffic (envd's port is built in). */
  userPorts: Map<number, number>;
  capacity: { vcpus: number; memoryMb: number; diskMb: number };
  close(): Promise<void>;
}

const S = agentv1.SandboxStatus;

export async function startFakeAgent(
  opts: { capacity?: { vcpus: number; memoryMb: number; diskMb: number } } = {},
): Promise<FakeAgent> {
  const home = mkdtempSync(join(tmpdir(), 'wrenn-fake-envd-'));
  const envd: RunningEnvd = await startEnvd({
    ...defaultOptions('host'),
    host: '127.0.0.1',
    port: 0,
    homeRoot: home,
    defaultUser: 'root',
  });
  const sandboxes = new Map<string, agentv1.SandboxInfo>();
  const pendingAutoPaused: string[] = [];
  const calls: string[] = [];
  const userPorts = new Map<number, number>();
  const upstreamPort = (port: string) =>
    Number(port) === 49983 ? envd.port : userPorts.get(Number(port));
  const capacity = opts.capacity ?? { vcpus: 8, memoryMb: 8192, diskMb: 65536 };
  const state = { hostToken: '', hostId: '' };

  const auth = (ctx: HandlerContext) => {
    if (ctx.requestHeader.get('x-wrenn-host-token') !== state.hostToken) {
      throw new ConnectError('bad host token', Code.Unauthenticated);
    }
  };
  const get = (id: string) => {
    const s = sandboxes.get(id);
    if (!s) throw new ConnectError(`sandbox ${id} not found`, Code.NotFound);
    return s;
  };
  const endAt = (secs: number) => (secs ? BigInt(Date.now() + secs * 1000) : 0n);

  const rpc = connectNodeAdapter({
    routes(router) {
      router.service(agentv1.AgentService, {
        async create(req, ctx) {
          auth(ctx);
          calls.push(`create ${req.sandboxId}`);
          if (req.templateId === 'explode') throw new ConnectError('boot failed', Code.Internal);
          const info = create(agentv1.SandboxInfoSchema, {
            sandboxId: req.sandboxId,
            teamId: req.teamId,
            templateId: req.templateId,
            status: S.RUNNING,
            vcpus: req.vcpus,
            memoryMb: req.memoryMb,
            diskMb: req.diskMb,
            createdAtMs: BigInt(Date.now()),
            startedAtMs: BigInt(Date.now()),
            endAtMs: endAt(req.timeoutSeconds),
            timeoutAction: req.timeoutAction,
            metadata: req.metadata,
            envdAccessToken: req.envdAccessToken,
          });
          sandboxes.set(req.sandboxId, info);
          return { sandbox: info };
        },
        async destroy(req, ctx) {
          auth(ctx);
          calls.push(`destroy ${req.sandboxId}`);
          get(req.sandboxId);
          sandboxes.delete(req.sandboxId);
          return {};
        },
        async pause(req, ctx) {
          auth(ctx);
          calls.push(`pause ${req.sandboxId}`);
          const s = get(req.sandboxId);
          if (s.status !== S.RUNNING)
            throw new ConnectError('not running', Code.FailedPrecondition);
          s.status = S.PAUSED;
          s.endAtMs = 0n;
          return { sandbox: s };
        },
        async resume(req, ctx) {
          auth(ctx);
          calls.push(`resume ${req.sandboxId}`);
          const s = get(req.sandboxId);
          if (s.status !== S.PAUSED) throw new ConnectError('not paused', Code.FailedPrecondition);
          s.status = S.RUNNING;
          s.endAtMs = endAt(req.timeoutSeconds);
          return { sandbox: s };
        },
        async setTimeout(req, ctx) {
          auth(ctx);
          const s = get(req.sandboxId);
          s.endAtMs = endAt(req.timeoutSeconds);
          return { sandbox: s };
        },
        async list(_req, ctx) {
          auth(ctx);
          const ids = pendingAutoPaused.splice(0);
          return { sandboxes: [...sandboxes.values()], autoPausedIds: ids };
        },
        async getMetrics(req, ctx) {
          auth(ctx);
          get(req.sandboxId);
          const ts = BigInt(Math.max(Number(req.sinceMs), 1_700_000_000_000));
          return {
            points: [
              {
                timestampMs: ts,
                cpuUsedPct: 12.5,
                cpuCount: 1,
                memUsedBytes: 100n << 20n,
                memTotalBytes: 512n << 20n,
                diskUsedBytes: 1n << 30n,
                diskTotalBytes: 2n << 30n,
              },
            ],
          };
        },
        async createTemplateSnapshot(req, ctx) {
          auth(ctx);
          const s = get(req.sandboxId);
          return {
            template: {
              teamId: req.teamId,
              templateId: req.templateId,
              hasSnapshot: true,
              sizeBytes: 1234n,
              createdAtMs: BigInt(Date.now()),
              memoryMb: s.memoryMb,
              vcpus: s.vcpus,
            },
          };
        },
        async deleteTemplate(req, ctx) {
          auth(ctx);
          calls.push(`deleteTemplate ${req.teamId}/${req.templateId}`);
          return {};
        },
        async listTemplates(_req, ctx) {
          auth(ctx);
          return { templates: [] };
        },
        async hostStatus(_req, ctx) {
          auth(ctx);
          return {
            hostId: state.hostId,
            vcpusTotal: capacity.vcpus,
            memoryTotalMb: BigInt(capacity.memoryMb),
            diskTotalMb: BigInt(capacity.diskMb),
            accelerator: 'tcg',
          };
        },
      });
    },
  });

  // `/proxy/<id>/<port>/rest` → the shared envd, as the real agent forwards into the VM.
  const proxy = (req: IncomingMessage, res: ServerResponse, m: RegExpExecArray) => {
    const fail = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code, message }));
    };
    if (req.headers['x-wrenn-host-token'] !== state.hostToken)
      return fail(401, 'unauthenticated', 'bad host token');
    const s = sandboxes.get(m[1]!);
    if (!s || s.status !== S.RUNNING)
      return fail(502, 'bad_gateway', `sandbox ${m[1]} is not running`);
    const headers = { ...req.headers };
    delete headers['x-wrenn-host-token'];
    const port = upstreamPort(m[2]!);
    if (!port) return fail(502, 'bad_gateway', `nothing listens on port ${m[2]}`);
    const up = http.request(
      { host: '127.0.0.1', port, path: m[3] || '/', method: req.method, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => fail(502, 'bad_gateway', 'envd unreachable'));
    req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    const m = /^\/proxy\/([a-z0-9-]+)\/(\d+)(\/.*)?$/.exec(req.url ?? '');
    if (m) return proxy(req, res, m);
    rpc(req, res);
  });
  // Upgrades (WebSocket) to user ports: handshake forwarded, then raw bytes both ways.
  server.on('upgrade', (req, socket, head) => {
    const m = /^\/proxy\/([a-z0-9-]+)\/(\d+)(\/.*)?$/.exec(req.url ?? '');
    const s = m && sandboxes.get(m[1]!);
    const port = m && upstreamPort(m[2]!);
    if (
      !m ||
      !s ||
      s.status !== S.RUNNING ||
      !port ||
      req.headers['x-wrenn-host-token'] !== state.hostToken
    ) {
      socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\n');
      return;
    }
    const headers = { ...req.headers };
    delete headers['x-wrenn-host-token'];
    const up = http.request({
      host: '127.0.0.1',
      port,
      path: m[3] || '/',
      method: req.method,
      headers,
    });
    up.on('upgrade', (res, upSocket, upHead) => {
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
      for (let i = 0; i < res.rawHeaders.length; i += 2)
        lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      upSocket.pipe(socket).pipe(upSocket);
    });
    up.on('error', () => socket.destroy());
    up.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const load = () => {
    const live = [...sandboxes.values()].filter((s) => s.status === S.RUNNING);
    return {
      vcpusUsed: live.reduce((a, s) => a + s.vcpus, 0),
      memoryUsedMb: live.reduce((a, s) => a + s.memoryMb, 0),
      diskUsedMb: 0,
      sandboxesRunning: live.length,
      sandboxesPaused: [...sandboxes.values()].filter((s) => s.status === S.PAUSED).length,
    };
  };

  return {
    url,
    sandboxes,
    calls,
    userPorts,
    capacity,
    get hostToken() {
      return state.hostToken;
    },
    get hostId() {
      return state.hostId;
    },
    autoPause(id) {
      get(id).status = S.PAUSED;
      pendingAutoPaused.push(id);
    },
    drop(id) {
      sandboxes.delete(id);
    },
    async register(cpUrl, registrationToken) {
      const res = await fetch(`${cpUrl}/v1/hosts/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ registrationToken, agentUrl: url, capacity }),
      });
      if (res.status !== 201) throw new Error(`register failed: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { hostId: string; hostToken: string };
      state.hostId = body.hostId;
      state.hostToken = body.hostToken;
    },
    heartbeat(cpUrl) {
      return fetch(`${cpUrl}/v1/hosts/${state.hostId}/heartbeat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-wrenn-host-token': state.hostToken },
        body: JSON.stringify({ capacity, load: load(), accelerator: 'tcg' }),
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await envd.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
