import {
  Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';
import { isValidId, WrennError } from '@wrenn/common';
import type { Manager } from '../manager.ts';
import { ENVD_PORT, type Sandbox } from '../sandbox.ts';
import { HOST_TOKEN_HEADER, hostTokenOk } from './auth.ts';

/**
 * `/proxy/<sandboxId>/<port>/<rest>` → `<port>` inside the sandbox: envd through the
 * slot's fixed port, other ports through `VmmDriver.forwardPort` (made once, cached).
 * Streams both ways without buffering, WebSocket upgrades included. Every request is
 * tracked in the sandbox's ConnTracker so a pause drains it first.
 */
export const PROXY_PREFIX = '/proxy/';

interface Target {
  sb: Sandbox;
  hostPort: number;
  path: string;
}

function parse(url: string): { id: string; port: number; path: string } {
  const m = /^\/proxy\/([^/?]+)\/([^/?]+)(\/[^?]*)?(\?.*)?$/.exec(url);
  if (!m)
    throw new WrennError('invalid_argument', 'proxy path must be /proxy/<sandboxId>/<port>/<path>');
  const id = m[1]!;
  const port = Number(m[2]);
  if (!isValidId(id))
    throw new WrennError('invalid_argument', `bad sandbox id ${JSON.stringify(id)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new WrennError('invalid_argument', `bad port ${JSON.stringify(m[2])}`);
  return { id, port, path: `${m[3] ?? '/'}${m[4] ?? ''}` };
}

async function resolve(m: Manager, url: string): Promise<Target> {
  const { id, port, path } = parse(url);
  const sb = m.boxes.get(id);
  if (!sb) throw new WrennError('bad_gateway', `sandbox ${id} not found on this host`);
  if (sb.status !== 'running' || !sb.vm)
    throw new WrennError('bad_gateway', `sandbox ${id} is ${sb.status}, not running`);
  let hostPort = port === ENVD_PORT ? m.slots.envdPort(sb.slot) : sb.forwards.get(port);
  if (hostPort === undefined) {
    hostPort = await m.driver.forwardPort(sb.vm, port);
    sb.forwards.set(port, hostPort);
  }
  return { sb, hostPort, path };
}

/**
 * Upstream connections into sandboxes, kept alive between requests. Its own pool, not
 * Node's global one, so that closing the server can end them: idle keep-alive sockets
 * would otherwise hold a stopping agent's process open until the guest times them out.
 */
export function newUpstreamPool(): Agent {
  return new Agent({ keepAlive: true });
}

function outgoingHeaders(h: IncomingHttpHeaders, hostPort: number): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...h, host: `127.0.0.1:${hostPort}` };
  delete out[HOST_TOKEN_HEADER];
  return out;
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof WrennError ? e : new WrennError('bad_gateway', (e as Error).message);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(err.httpStatus, { 'content-type': 'application/json' });
  res.end(JSON.stringify(err.toJSON()));
}

export function proxyHandler(m: Manager, token: () => string, pool: Agent) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!hostTokenOk(req.headers[HOST_TOKEN_HEADER], token())) {
      sendError(res, new WrennError('unauthenticated', `missing or wrong ${HOST_TOKEN_HEADER}`));
      return;
    }
    let t: Target;
    try {
      t = await resolve(m, req.url ?? '');
    } catch (e) {
      sendError(res, e);
      return;
    }
    const upstream = request({
      agent: pool,
      host: '127.0.0.1',
      port: t.hostPort,
      method: req.method,
      path: t.path,
      headers: outgoingHeaders(req.headers, t.hostPort),
    });
    const done = t.sb.conns.begin(() => {
      upstream.destroy();
      res.destroy();
    });
    res.on('close', done);
    upstream.on('response', (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders);
      res.flushHeaders();
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('error', (e) => {
      sendError(
        res,
        new WrennError('bad_gateway', `sandbox ${t.sb.id} port unreachable: ${e.message}`),
      );
      done();
    });
    req.on('aborted', () => upstream.destroy());
    req.pipe(upstream);
  };
}

export function proxyUpgradeHandler(m: Manager, token: () => string, pool: Agent) {
  return async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const fail = (e: WrennError) => {
      const body = JSON.stringify(e.toJSON());
      socket.end(
        `HTTP/1.1 ${e.httpStatus} ${e.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    if (!hostTokenOk(req.headers[HOST_TOKEN_HEADER], token())) {
      fail(new WrennError('unauthenticated', `missing or wrong ${HOST_TOKEN_HEADER}`));
      return;
    }
    let t: Target;
    try {
      t = await resolve(m, req.url ?? '');
    } catch (e) {
      fail(e instanceof WrennError ? e : new WrennError('bad_gateway', (e as Error).message));
      return;
    }
    const upstream = request({
      agent: pool,
      host: '127.0.0.1',
      port: t.hostPort,
      method: req.method,
      path: t.path,
      headers: outgoingHeaders(req.headers, t.hostPort),
    });
    const done = t.sb.conns.begin(() => {
      upstream.destroy();
      socket.destroy();
    });
    socket.on('close', done);
    socket.on('error', () => upstream.destroy());
    upstream.on('upgrade', (up, upSocket, upHead) => {
      const lines = [`HTTP/1.1 ${up.statusCode} ${up.statusMessage}`];
      for (let i = 0; i < up.rawHeaders.length; i += 2)
        lines.push(`${up.rawHeaders[i]}: ${up.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      upSocket.pipe(socket).pipe(upSocket);
      upSocket.on('error', () => socket.destroy());
      upSocket.on('close', () => socket.destroy());
    });
    upstream.on('response', (up) => {
      // The upstream refused the upgrade: relay its answer and close.
      const lines = [`HTTP/1.1 ${up.statusCode} ${up.statusMessage}`];
      for (let i = 0; i < up.rawHeaders.length; i += 2)
        lines.push(`${up.rawHeaders[i]}: ${up.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      up.pipe(socket);
    });
    upstream.on('error', (e) =>
      fail(new WrennError('bad_gateway', `sandbox ${t.sb.id} port unreachable: ${e.message}`)),
    );
    upstream.end();
  };
}
