import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { filesystemv1, processv1 } from '@wrenn/proto';
import { checkAccessToken } from './auth.ts';
import type { EnvdOptions } from './config.ts';
import { toConnectError } from './errors.ts';
import { MetadataStore } from './filesystem/metadata.ts';
import { filesystemService } from './filesystem/service.ts';
import { WatcherTable } from './filesystem/watchers.ts';
import { dualProtocolServer } from './h2c.ts';
import { sendError } from './http/respond.ts';
import { handleHttp } from './http/router.ts';
import { ProcessRegistry } from './process/registry.ts';
import { processService } from './process/service.ts';
import { EnvdState } from './state.ts';

const RPC_PATH = /^\/(process\.Process|filesystem\.Filesystem)\//;

export interface RunningEnvd {
  /** The listening socket: HTTP/1.1 and h2c on one port. */
  server: Server;
  port: number;
  state: EnvdState;
  close(): Promise<void>;
}

/**
 * Start envd: Connect RPC (process, filesystem) and the plain HTTP routes on one port, over
 * HTTP/1.1 or h2c.
 */
export async function startEnvd(opts: EnvdOptions): Promise<RunningEnvd> {
  const state = new EnvdState(opts);
  const registry = new ProcessRegistry();
  const watchers = new WatcherTable();
  const metadata = new MetadataStore();
  const sessions = new Set<ServerHttp2Session>();
  const closeIdleConnections = () => {
    h1.closeIdleConnections();
    // Graceful: streams in flight finish, the client opens a new connection for the next.
    for (const s of sessions) s.close();
  };
  const httpDeps = { state, metadata, closeIdleConnections };
  const rpc = connectNodeAdapter({
    routes(router) {
      router.service(processv1.Process, processService(state, registry));
      router.service(filesystemv1.Filesystem, filesystemService(state, watchers, metadata));
    },
    // No per-message gzip: envd's peers sit on the same host or a virtual NIC, and
    // compressing process output capped `cat` at ~35 MiB/s (the SDK never asks for it).
    acceptCompression: [],
    // Newer SDKs may add fields; unknown ones must not fail a call.
    jsonOptions: { ignoreUnknownFields: true },
    // RPCs check the token here so a refusal is a proper Connect error (streams included).
    interceptors: [
      (next) => async (req) => {
        try {
          checkAccessToken(state, req.header.get('x-access-token') ?? undefined);
        } catch (e) {
          throw toConnectError(e);
        }
        return next(req);
      },
    ],
    fallback: (req, res) =>
      void handleHttp(httpDeps, req as IncomingMessage, res as ServerResponse),
  });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    // /health is open; /files checks the token or a URL signature itself; RPCs check it in
    // the interceptor above; the other routes need it here once /init set one.
    if (path !== '/health' && path !== '/files' && !RPC_PATH.test(path)) {
      try {
        checkAccessToken(state, header(req, 'x-access-token'));
      } catch (e) {
        sendError(res, e);
        return;
      }
    }
    rpc(req, res);
  };
  const h1 = createServer(handle);
  h1.keepAliveTimeout = 65_000; // longer than the SDK's pooled idle connections
  h1.requestTimeout = 0; // an upload may take as long as it takes (headers still time out)
  // HTTP/2's request and response objects are compatible with HTTP/1.1's where envd uses them.
  const h2 = createHttp2Server(handle as unknown as Parameters<typeof createHttp2Server>[0]);
  h2.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  const { server, dropUndecided } = dualProtocolServer(h1, h2, h1.headersTimeout);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // startup_ms: from the node process starting (bootstrap included) to listening.
  const startupMs = Math.round(process.uptime() * 1000);
  console.log(
    JSON.stringify({
      msg: 'envd listening',
      mode: opts.mode,
      host: opts.host,
      port,
      pid: process.pid,
      startup_ms: startupMs,
    }),
  );
  return {
    server,
    port,
    state,
    close: () =>
      new Promise((resolve) => {
        watchers.closeAll();
        server.close(() => resolve());
        dropUndecided();
        h1.closeAllConnections();
        for (const s of sessions) s.destroy();
      }),
  };
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
