import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { errorMessage, WrennError } from '@wrenn/common';
import { processv1 } from '@wrenn/proto';

/**
 * The agent's side of envd's HTTP routes: health, init (env vars, token, clock, and the
 * dead keep-alive connections dropped after a restore) and, before a template snapshot,
 * snapshot/prepare. The one envd client of the agent and the VMM layer (template builds).
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
/** Between readiness attempts: a restored guest answers within tens of ms under TCG. */
const POLL_MS = 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ReadyOptions {
  /** Checked every 25th attempt (two /proc reads): stop early when the VM is gone. */
  isDead?: () => Promise<boolean>;
}

/**
 * Run `attempt` until it answers, up to `timeoutMs`: connection errors (the guest is not
 * up yet) are retried every POLL_MS; whatever HTTP status comes back is the answer.
 */
async function untilAnswered(
  what: string,
  timeoutMs: number,
  opts: ReadyOptions,
  attempt: (timeoutMs: number) => Promise<Response>,
): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (let n = 1; Date.now() < deadline; n++) {
    try {
      return await attempt(Math.min(2000, Math.max(100, deadline - Date.now())));
    } catch (e) {
      last = (e as Error).message;
    }
    if (opts.isDead && n % 25 === 0 && (await opts.isDead()))
      throw new WrennError('unavailable', `the VM exited before envd answered ${what}`);
    await sleep(POLL_MS);
  }
  throw new WrennError(
    'deadline_exceeded',
    `envd did not answer ${what} within ${timeoutMs} ms (${last})`,
  );
}

/** Poll `GET /health` until 204, up to `timeoutMs`. */
export async function waitEnvdHealthy(
  port: number,
  timeoutMs: number,
  opts: ReadyOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await untilAnswered('GET /health', deadline - Date.now(), opts, (t) =>
      fetch(`${base(port)}/health`, { signal: AbortSignal.timeout(t) }),
    );
    await res.body?.cancel();
    if (res.status === 204 || res.status === 200) return;
    if (Date.now() >= deadline)
      throw new WrennError('deadline_exceeded', `envd /health answered HTTP ${res.status}`);
    await sleep(POLL_MS);
  }
}

function postInit(port: number, init: unknown, token: string | undefined, timeoutMs: number) {
  return fetch(`${base(port)}/init`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { 'x-access-token': token } : {}),
    },
    body: JSON.stringify(init),
    signal: AbortSignal.timeout(timeoutMs),
  });
}

/**
 * POST /init as the readiness probe (as E2B's orchestrator does): retried until the
 * restored guest answers, which saves a /health round trip on every create and resume.
 * /init is idempotent; the one catch is a retry after an attempt that did land but lost
 * its answer: envd then already holds the new token, so a 401 is retried once with it.
 */
export async function initEnvdWhenReady(
  port: number,
  fields: Omit<EnvdInit, 'timestamp'>,
  currentToken: string | undefined,
  timeoutMs: number,
  opts: ReadyOptions = {},
): Promise<void> {
  let attempts = 0;
  // The clock is read per attempt: the guest is set to when it answers, not when we began.
  const init = () => ({ ...fields, timestamp: new Date().toISOString() });
  let res = await untilAnswered('POST /init', timeoutMs, opts, (t) => {
    attempts++;
    return postInit(port, init(), currentToken, t);
  });
  const mayHaveLanded = attempts > 1;
  const newToken = fields.accessToken;
  if (res.status === 401 && mayHaveLanded && newToken && newToken !== currentToken) {
    await res.body?.cancel();
    res = await postInit(port, init(), newToken, 10_000);
  }
  const text = await res.text();
  if (res.status >= 300)
    throw new WrennError('unavailable', `envd /init: HTTP ${res.status} ${text.slice(0, 200)}`);
}

/**
 * A POST /init that changes nothing (no env vars, no token, a timestamp in the past: the
 * clock only moves forward) but takes the path a create's /init takes, once, before a
 * template snapshot: every clone's first /init then finds that code compiled by V8 and the
 * clock addon loaded, instead of compiling it under emulation (~0.2 s of TCG per create).
 * Likewise a first command (`/bin/true`). Last, /snapshot/prepare drops the warm-up's
 * keep-alive connection: every clone would restore with it and its peer gone, and that
 * cost ~40-60 ms more to each clone's first answer under TCG (measured on the raw floor).
 */
export async function warmEnvd(port: number, timeoutMs = 30_000): Promise<void> {
  const body = { envVars: {}, accessToken: '', timestamp: new Date(0).toISOString() };
  const res = await postInit(port, body, undefined, timeoutMs);
  const text = await res.text();
  if (res.status !== 204)
    throw new WrennError(
      'unavailable',
      `envd warm-up /init: HTTP ${res.status} ${text.slice(0, 200)}`,
    );
  // The first command: Connect's server stream and the process service, run once.
  await runOnce(port, '/bin/true', timeoutMs);
  await prepareSnapshot(port, timeoutMs);
}

/** POST /snapshot/prepare: envd drops its idle keep-alive connections. */
async function prepareSnapshot(port: number, timeoutMs: number): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${base(port)}/snapshot/prepare`, {
      method: 'POST',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new WrennError('unavailable', `envd /snapshot/prepare: ${errorMessage(e)}`, { cause: e });
  }
  const text = await res.text();
  if (res.status !== 204)
    throw new WrennError(
      'unavailable',
      `envd /snapshot/prepare: HTTP ${res.status} ${text.slice(0, 200)}`,
    );
}

/** Run `cmd` through envd's process service to its end (Connect, JSON: what the SDK speaks). */
async function runOnce(port: number, cmd: string, timeoutMs: number): Promise<void> {
  const proc = createClient(
    processv1.Process,
    createConnectTransport({ baseUrl: base(port), httpVersion: '1.1' }),
  );
  try {
    for await (const _ of proc.start({ process: { cmd, args: [], envs: {} } }, { timeoutMs })) {
      // read to the end event
    }
  } catch (e) {
    throw new WrennError('unavailable', `envd warm-up ${cmd}: ${errorMessage(e)}`, { cause: e });
  }
}
