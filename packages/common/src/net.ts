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

/**
 * Close an HTTP server's app (`close` stops listening and waits for its connections), giving
 * in-flight requests `graceMs`, then cutting every connection left — including ones that
 * never sent a request, which Node would otherwise wait on for its 60 s headers timeout.
 */
export async function closeWithGrace(
  server: { closeAllConnections(): void },
  close: () => Promise<unknown>,
  graceMs = 2000,
): Promise<void> {
  const cut = setTimeout(() => server.closeAllConnections(), graceMs);
  try {
    await close();
  } finally {
    clearTimeout(cut);
  }
}
