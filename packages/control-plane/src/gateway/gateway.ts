import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from '@wrenn/common';
import { errorMessage, WrennError } from '@wrenn/common';
import type { SandboxService } from '../services/sandboxes.ts';
import { signedFileRequest } from './signed-url.ts';

/**
 * The gateway forwards envd and user-port traffic to the agent that owns the sandbox, at
 * `<agentUrl>/proxy/<id>/<port>/<rest>`. It works on raw Node streams, below Fastify, so
 * bodies, server streams and WebSocket upgrades pass through without buffering.
 *
 * Routing: `E2b-Sandbox-Id` + `E2b-Sandbox-Port` headers (what the e2b SDK sends), or a
 * `<port>-<id>.<domain>` Host when a sandbox domain is configured, or — for the SDK's signed
 * `/files` URLs, which carry no header — the sandbox whose envd token signed the URL.
 */
export interface GatewayRoute {
  sandboxId: string;
  port: number;
}

const ENVD_PORT = 49983;

// Hop-by-hop headers belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

export class Gateway {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256 });

  constructor(
    private readonly sandboxes: SandboxService,
    private readonly sandboxDomain: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Null when the request is for the API, not for a sandbox. */
  match(req: IncomingMessage): GatewayRoute | null {
    const id = req.headers['e2b-sandbox-id'];
    const port = req.headers['e2b-sandbox-port'];
    if (typeof id === 'string' && id) {
      return {
        sandboxId: id.toLowerCase(),
        port: typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : 49983,
      };
    }
    if (this.sandboxDomain && req.headers.host) {
      const host = req.headers.host.replace(/:\d+$/, '').toLowerCase();
      const suffix = `.${this.sandboxDomain.toLowerCase()}`;
      if (host.endsWith(suffix)) {
        const m = /^(\d{1,5})-([a-z0-9][a-z0-9-]*)$/.exec(host.slice(0, -suffix.length));
        if (m) return { sandboxId: m[2]!, port: Number(m[1]) };
      }
    }
    return null;
  }

  /**
   * A signed `/files` URL with no sandbox header (`uploadUrl()`/`downloadUrl()` built on
   * E2B_SANDBOX_URL): true when this request is one, and `forwardSigned` will route it.
   */
  isSignedFiles(req: IncomingMessage): boolean {
    return signedFileRequest(req) !== undefined;
  }

  /** Routes a signed `/files` URL to the sandbox whose token signed it; envd re-checks it. */
  async forwardSigned(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const signed = signedFileRequest(req)!;
    let sandboxId: string | undefined;
    try {
      sandboxId = await this.sandboxes.findBySignature(signed);
    } catch (e) {
      return sendError(res, e);
    }
    if (!sandboxId) {
      return sendError(
        res,
        new WrennError(
          'unauthenticated',
          'no sandbox matches this signed URL (expired or forged?)',
        ),
      );
    }
    return this.forward({ sandboxId, port: ENVD_PORT }, req, res);
  }

  async forward(route: GatewayRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let target: { url: string; headers: Record<string, string> };
    try {
      target = await this.sandboxes.gatewayTarget(route.sandboxId, route.port);
    } catch (e) {
      return sendError(res, e);
    }
    const url = new URL(target.url + (req.url ?? '/'));
    const proxyReq = (url.protocol === 'https:' ? https : http).request(url, {
      method: req.method,
      headers: { ...forwardHeaders(req.headers), ...target.headers },
      agent: url.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
    });
    proxyReq.on('response', (proxyRes) => {
      res.writeHead(proxyRes.statusCode ?? 502, forwardHeaders(proxyRes.headers));
      // Flush headers now: server-streaming responses must not wait for their first chunk.
      res.flushHeaders();
      proxyRes.pipe(res);
      proxyRes.on('error', () => res.destroy());
    });
    proxyReq.on('error', (e) => {
      if (!res.headersSent)
        sendError(res, new WrennError('bad_gateway', `agent unreachable: ${errorMessage(e)}`));
      else res.destroy();
    });
    // Either side going away ends the other: no half-open upstream requests pile up.
    res.on('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
    req.on('error', () => proxyReq.destroy());
    req.pipe(proxyReq);
  }

  /** WebSocket (and any Upgrade): handshake forwarded, then raw bytes both ways. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const route = this.match(req);
    if (!route) {
      socket.end(
        'HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"code":"not_found","message":"no upgrade route"}',
      );
      return;
    }
    let target: { url: string; headers: Record<string, string> };
    try {
      target = await this.sandboxes.gatewayTarget(route.sandboxId, route.port);
    } catch (e) {
      const body = JSON.stringify(toErrorBody(e));
      socket.end(
        `HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const url = new URL(target.url + (req.url ?? '/'));
    const headers: Record<string, string | string[]> = {
      ...forwardHeaders(req.headers),
      ...target.headers,
    };
    headers.connection = 'Upgrade';
    headers.upgrade = String(req.headers.upgrade ?? 'websocket');
    const proxyReq = (url.protocol === 'https:' ? https : http).request(url, {
      method: req.method,
      headers,
    });
    proxyReq.on('upgrade', (proxyRes, proxySocket, proxyHead) => {
      const lines = [`HTTP/1.1 ${proxyRes.statusCode} ${proxyRes.statusMessage}`];
      for (let i = 0; i < proxyRes.rawHeaders.length; i += 2)
        lines.push(`${proxyRes.rawHeaders[i]}: ${proxyRes.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (proxyHead.length) socket.write(proxyHead);
      if (head.length) proxySocket.write(head);
      proxySocket.pipe(socket).pipe(proxySocket);
      proxySocket.on('error', () => socket.destroy());
      socket.on('error', () => proxySocket.destroy());
    });
    proxyReq.on('response', (proxyRes) => {
      // The upstream refused the upgrade: relay its answer and close.
      const lines = [
        `HTTP/1.1 ${proxyRes.statusCode} ${proxyRes.statusMessage}`,
        'connection: close',
      ];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      proxyRes.pipe(socket);
    });
    proxyReq.on('error', (e) => {
      this.log.warn({ sandboxId: route.sandboxId, err: errorMessage(e) }, 'gateway upgrade failed');
      socket.destroy();
    });
    proxyReq.end();
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

function forwardHeaders(h: http.IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function toErrorBody(e: unknown) {
  return e instanceof WrennError ? e.toJSON() : { code: 'bad_gateway', message: errorMessage(e) };
}

function sendError(res: ServerResponse, e: unknown) {
  const err = e instanceof WrennError ? e : new WrennError('bad_gateway', errorMessage(e));
  const body = JSON.stringify(err.toJSON());
  // The e2b SDK treats 502 as "sandbox not running": unknown and paused both answer 502.
  const status = err.code === 'bad_gateway' || err.code === 'not_found' ? 502 : err.httpStatus;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
