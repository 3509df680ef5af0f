import { freeLoopbackPort, WrennError } from '@wrenn/common';

export { freeLoopbackPort };

/** GET /health on envd through its forwarded port until it answers 204. */
export async function waitEnvdHealthy(
  hostPort: number,
  timeoutMs: number,
  isDead?: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let polls = 0;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${hostPort}/health`, {
      signal: AbortSignal.timeout(2000),
    }).then(
      (r) => r.status === 204,
      () => false,
    );
    if (ok) return;
    // Checking the VM process costs two /proc reads: do it every 25th poll only.
    if (isDead && ++polls % 25 === 0 && (await isDead()))
      throw new WrennError('unavailable', 'the VM exited before envd became healthy');
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new WrennError(
    'deadline_exceeded',
    `envd did not answer GET /health with 204 within ${timeoutMs} ms`,
  );
}
