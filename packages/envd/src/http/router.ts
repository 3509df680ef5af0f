import type { IncomingMessage, ServerResponse } from 'node:http';
import { WrennError } from '@wrenn/common/errors.ts';
import { ENVD_VERSION } from '../config.ts';
import type { MetadataStore } from '../filesystem/metadata.ts';
import type { EnvdState } from '../state.ts';
import { downloadFile, uploadFiles } from './files.ts';
import { init } from './init.ts';
import { metrics } from './metrics.ts';
import { sendError, sendJson } from './respond.ts';

export interface HttpDeps {
  state: EnvdState;
  metadata: MetadataStore;
  /**
   * Drop idle keep-alive connections: after a restore their peers are gone. Never the
   * connection of a request still being answered.
   */
  closeIdleConnections(): void;
}

/** The plain HTTP routes (everything that is not a Connect RPC). Auth happened upstream. */
export async function handleHttp(
  deps: HttpDeps,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://envd');
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case 'GET /health':
        res.writeHead(204, { 'x-envd-version': ENVD_VERSION }).end();
        return;
      case 'GET /files':
        await downloadFile(deps.state, req, res, url.searchParams);
        return;
      case 'POST /files':
        await uploadFiles(deps.state, deps.metadata, req, res, url.searchParams);
        return;
      case 'POST /init': {
        const afterResponse = await init(deps.state, req);
        // /init follows every restore (create and resume): any other connection is from
        // before the snapshot, its peer gone with the old VMM. This one is still answering.
        deps.closeIdleConnections();
        res.writeHead(204).end();
        afterResponse();
        return;
      }
      case 'GET /envs':
        sendJson(res, 200, Object.fromEntries(deps.state.envVars));
        return;
      case 'GET /metrics':
        sendJson(res, 200, await metrics());
        return;
      case 'POST /snapshot/prepare':
        prepareSnapshot(deps);
        res.writeHead(204).end();
        return;
      default:
        throw new WrennError('not_found', `no route for ${route}`);
    }
  } catch (e) {
    req.resume(); // discard any unread body so the connection can be reused
    sendError(res, e);
  }
}

/**
 * Quiesce before a snapshot: forget idle connections (their sockets would be dead after a
 * restore; /init drops them too, so the agent's pause skips this round trip). No `sync`:
 * every snapshot saves guest RAM with the disk, so dirty pages travel in the page cache and
 * the pair is consistent; a sync only cost a fork (~0.1-0.5 s in TCG).
 */
function prepareSnapshot(deps: HttpDeps): void {
  deps.closeIdleConnections();
}
