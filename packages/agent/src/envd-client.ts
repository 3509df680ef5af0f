import { WrennError } from '@wrenn/common';

/**
 * The agent's side of envd's HTTP routes: health, init (env vars, token, clock after a
 * restore), snapshot/prepare (quiesce before a pause).
 */
export interface EnvdInit {
  envVars: Record<string, string>;
  accessToken?: string;
  defaultUser?: string;
  defaultWorkdir?: string;
  /** RFC 3339; sets the guest clock (a restored guest's clock is stale). */
  timestamp: string;
}

const base = (port: number) => `http://127.0.0.1:${port}`;

/** Poll `/health` until 204, up to `timeoutMs`. */
export async function waitEnvdHealthy(
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new WrennError('unavailable', 'aborted while waiting for envd');
    try {
      const res = await fetch(`${base(port)}/health`, {
        signal: AbortSignal.timeout(Math.min(2000, Math.max(100, deadline - Date.now()))),
      });
      await res.body?.cancel();
      if (res.status === 204 || res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new WrennError(
    'deadline_exceeded',
    `envd did not become healthy within ${timeoutMs} ms (${last})`,
  );
}

async function post(
  port: number,
  path: string,
  body: unknown,
  token: string | undefined,
  timeoutMs: number,
) {
  let res: Response;
  try {
    res = await fetch(`${base(port)}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { 'x-access-token': token } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new WrennError('unavailable', `envd ${path}: ${(e as Error).message}`, { cause: e });
  }
  const text = await res.text();
  if (res.status >= 300)
    throw new WrennError('unavailable', `envd ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
}

export async function initEnvd(
  port: number,
  init: EnvdInit,
  currentToken: string | undefined,
  timeoutMs = 10_000,
) {
  await post(port, '/init', init, currentToken, timeoutMs);
}

export async function prepareSnapshot(port: number, token: string | undefined, timeoutMs = 10_000) {
  await post(port, '/snapshot/prepare', {}, token, timeoutMs);
}
