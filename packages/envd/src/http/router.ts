import { execFile } from 'node:child_process';
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
  /** Drop idle keep-alive connections: after a restore their peers are gone. */
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
      case 'POST /init':
        await init(deps.state, req);
        res.writeHead(204).end();
        return;
      case 'GET /envs':
        sendJson(res, 200, Object.fromEntries(deps.state.envVars));
        return;
      case 'GET /metrics':
        sendJson(res, 200, await metrics());
        return;
      case 'POST /snapshot/prepare':
        await prepareSnapshot(deps);
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

/** Quiesce before a pause: flush dirty pages to the disk and forget idle connections. */
async function prepareSnapshot(deps: HttpDeps): Promise<void> {
  await new Promise<void>((resolve) => execFile('sync', () => resolve()));
  deps.closeIdleConnections();
}
