import http from 'node:http';
import { WrennError } from '@wrenn/common';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Core } from '../core.ts';
import { e2bRoutes } from '../e2b/routes.ts';
import { Gateway } from '../gateway/gateway.ts';
import type { Caller } from '../services/keys.ts';
import { installErrorHandling } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { RateLimiter } from './rate-limit.ts';
import { type RouteAuth, RouteRegistry } from './route.ts';
import { hostRoutes, keyRoutes, templateRoutes } from './routes/admin.ts';
import { sandboxRoutes } from './routes/sandboxes.ts';

export const API_VERSION = '0.1.0';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    caller?: Caller;
  }
}

/** `X-API-Key` (the e2b SDK sends `X-API-KEY`; header names are case-insensitive) or Bearer. */
function presentedKey(req: FastifyRequest): string | undefined {
  const h = req.headers['x-api-key'];
  if (typeof h === 'string' && h) return h;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim() || undefined;
  return undefined;
}

export interface BuiltServer {
  app: FastifyInstance;
  /** Extra route sets (the E2B-compatible API) register here, against the same Core. */
  registry: RouteRegistry;
  gateway: Gateway;
}

/**
 * The HTTP edge: Fastify for the API, with the gateway in front of it on the same port
 * (sandbox traffic never enters Fastify, so it is neither parsed nor buffered).
 */
export function buildServer(core: Core): BuiltServer {
  let gateway: Gateway | undefined;
  const app = Fastify({
    logger: core.log.level === 'silent' ? false : { level: core.log.level },
    bodyLimit: 256 << 20,
    // close() must not wait for idle keep-alive clients (SDKs, the CLI).
    forceCloseConnections: true,
    serverFactory: (handler) => {
      const server = http.createServer((req, res) => {
        const route = gateway?.match(req);
        if (route) void gateway!.forward(route, req, res);
        else if (gateway?.isSignedFiles(req)) void gateway.forwardSigned(req, res);
        else handler(req, res);
      });
      server.on('upgrade', (req, socket, head) => void gateway?.upgrade(req, socket, head));
      return server;
    },
  });
  gateway = new Gateway(core.sandboxes, core.config.sandboxDomain, core.log);
  installErrorHandling(app);

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(
        new WrennError('invalid_argument', `malformed JSON body: ${(e as Error).message}`),
        undefined,
      );
    }
  });
  // File uploads: raw bytes, whatever the content type says.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const limiter = new RateLimiter(
    core.config.rateLimit.perSecond,
    core.config.rateLimit.burst,
    core.clock,
  );
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.auth !== 'key') return;
    const caller = await core.keys.authenticate(presentedKey(req));
    const wait = limiter.take(caller.keyId);
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      throw new WrennError(
        'resource_exhausted',
        `rate limit of ${core.config.rateLimit.perSecond} requests/s per API key exceeded; retry in ${wait} s`,
      );
    }
    req.caller = caller;
  });

  const registry = new RouteRegistry(app);
  sandboxRoutes(registry, core);
  templateRoutes(registry, core);
  hostRoutes(registry, core);
  keyRoutes(registry, core);
  e2bRoutes(app, registry, core);

  app.get('/health', async () => ({ status: 'ok', database: core.db.dialect }));
  app.get('/openapi.json', async () => openApiDocument(registry.specs, API_VERSION));
  return { app, registry, gateway };
}
