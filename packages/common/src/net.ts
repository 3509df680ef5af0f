import { createServer } from 'node:net';

/**
 * A loopback TCP port free right now. Another process can take it before the caller binds
 * it; callers that hand it to QEMU retry on "could not set up host forwarding".
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
