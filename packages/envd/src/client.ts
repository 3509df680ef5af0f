import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { filesystemv1, processv1 } from '@wrenn/proto';

/**
 * Typed Connect clients for an envd at `baseUrl` (HTTP/1.1, binary codec by default) —
 * for the agent, tests and benchmarks; the e2b SDK speaks the same protocol in JSON.
 *
 * @example const { process } = envdClients('http://127.0.0.1:49983'); await process.list({});
 */
export function envdClients(
  baseUrl: string,
  opts: { binary?: boolean; headers?: Record<string, string> } = {},
) {
  const setHeaders: Interceptor = (next) => async (req) => {
    for (const [k, v] of Object.entries(opts.headers ?? {})) req.header.set(k, v);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: '1.1',
    useBinaryFormat: opts.binary ?? true,
    interceptors: [setHeaders],
    acceptCompression: [], // envd does not compress; do not ask
  });
  return {
    process: createClient(processv1.Process, transport),
    filesystem: createClient(filesystemv1.Filesystem, transport),
  };
}
