import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EnvdOptions } from './config.ts';

export interface RunningEnvd {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Start envd's HTTP server (Connect RPC + plain HTTP routes on one port). */
export async function startEnvd(opts: EnvdOptions): Promise<RunningEnvd> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/health') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'not_found', message: `no route for ${req.method} ${req.url}` }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  console.log(JSON.stringify({ msg: 'envd listening', mode: opts.mode, host: opts.host, port }));
  return {
    server,
    port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
