import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fastifyConnectPlugin } from '@connectrpc/connect-fastify';
import { WrennError } from '@wrenn/common';
import Fastify, { type FastifyInstance } from 'fastify';
import { HOST_TOKEN_HEADER, hostTokenOk } from './auth.ts';
import { newUpstreamPool, PROXY_PREFIX, proxyHandler, proxyUpgradeHandler } from './proxy.ts';
import { agentRoutes, type RpcDeps, rpcInterceptors } from './rpc.ts';

/**
 * The agent's HTTP server: Connect RPC (Fastify) and the proxy, which runs on raw Node
 * streams below Fastify so bodies stream both ways and upgrades pass through.
 */
/** `token` is read per request: registration replaces the provisional token. */
export async function buildServer(
  deps: RpcDeps & { token: () => string },
): Promise<FastifyInstance> {
  const pool = newUpstreamPool();
  const proxy = proxyHandler(deps.m, deps.token, pool);
  const upgrade = proxyUpgradeHandler(deps.m, deps.token, pool);
  const app = Fastify({
    logger: false,
    serverFactory: (handler) => {
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        if (req.url?.startsWith(PROXY_PREFIX)) void proxy(req, res);
        else handler(req, res);
      });
      server.on('upgrade', (req, socket, head) => {
        if (req.url?.startsWith(PROXY_PREFIX)) void upgrade(req, socket, head);
        else socket.destroy();
      });
      return server;
    },
  });
  app.addHook('onRequest', async (req, reply) => {
    if (req.url.startsWith('/wrenn.agent.v1.')) return; // the Connect interceptor answers in Connect's format
    if (req.url === '/health') return;
    if (!hostTokenOk(req.headers[HOST_TOKEN_HEADER], deps.token())) {
      const e = new WrennError('unauthenticated', `missing or wrong ${HOST_TOKEN_HEADER}`);
      await reply.code(401).send(e.toJSON());
    }
  });
  app.get('/health', async (_req, reply) => reply.code(204).send());
  app.setNotFoundHandler(async (req, reply) =>
    reply
      .code(404)
      .send(new WrennError('not_found', `no route for ${req.method} ${req.url}`).toJSON()),
  );
  app.setErrorHandler(async (err, _req, reply) => {
    const e = err instanceof WrennError ? err : new WrennError('internal', (err as Error).message);
    await reply.code(e.httpStatus).send(e.toJSON());
  });
  app.addHook('onClose', async () => pool.destroy());
  await app.register(fastifyConnectPlugin, {
    routes: agentRoutes(deps),
    interceptors: rpcInterceptors(deps.token),
  });
  return app;
}
