import type { IncomingMessage } from 'node:http';
import { WrennError } from '@wrenn/common/errors.ts';
import { resolveUser } from '../auth.ts';
import { loadClockAddon, setGuestClock } from '../clock.ts';
import type { EnvdState } from '../state.ts';

export interface InitBody {
  envVars?: Record<string, string>;
  accessToken?: string;
  defaultUser?: string;
  defaultWorkdir?: string;
  /** RFC 3339; after a restore the guest clock is behind by the paused time. */
  timestamp?: string;
}

const MAX_JSON_BYTES = 1 << 20;

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_JSON_BYTES)
      throw new WrennError('invalid_argument', 'JSON body larger than 1 MiB');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WrennError('invalid_argument', `body is not valid JSON: ${(e as Error).message}`);
  }
}

function parseInit(v: unknown): InitBody {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new WrennError('invalid_argument', '/init body must be a JSON object');
  const o = v as Record<string, unknown>;
  const str = (k: string) => {
    if (o[k] === undefined || o[k] === null) return undefined;
    if (typeof o[k] !== 'string') throw new WrennError('invalid_argument', `${k} must be a string`);
    return o[k] as string;
  };
  let envVars: Record<string, string> | undefined;
  if (o.envVars !== undefined && o.envVars !== null) {
    if (typeof o.envVars !== 'object' || Array.isArray(o.envVars))
      throw new WrennError('invalid_argument', 'envVars must be an object');
    envVars = {};
    for (const [k, val] of Object.entries(o.envVars as Record<string, unknown>)) {
      if (typeof val !== 'string')
        throw new WrennError('invalid_argument', `envVars.${k} must be a string`);
      envVars[k] = val;
    }
  }
  return {
    envVars,
    accessToken: str('accessToken'),
    defaultUser: str('defaultUser'),
    defaultWorkdir: str('defaultWorkdir'),
    timestamp: str('timestamp'),
  };
}

/**
 * POST /init — the control plane's handshake after create or resume. Validates everything
 * before changing anything, so a bad body leaves envd as it was. Returns what must run
 * right after the 204 is written: moving the clock.
 */
export async function init(state: EnvdState, req: IncomingMessage): Promise<() => void> {
  if (state.opts.mode === 'guest') loadClockAddon(); // a guest without its addon fails loudly
  const body = parseInit(await readJson(req));
  let clockMs: number | undefined;
  if (body.timestamp) {
    clockMs = Date.parse(body.timestamp);
    if (Number.isNaN(clockMs))
      throw new WrennError('invalid_argument', `timestamp '${body.timestamp}' is not RFC 3339`);
  }
  if (body.defaultUser) resolveUser(state, body.defaultUser); // throws if no such user
  if (body.envVars) for (const [k, v] of Object.entries(body.envVars)) state.envVars.set(k, v);
  if (body.accessToken !== undefined) state.accessToken = body.accessToken || undefined;
  if (body.defaultUser) state.defaultUser = body.defaultUser;
  if (body.defaultWorkdir) state.defaultWorkdir = body.defaultWorkdir;
  // Only a guest moves its clock, and only forward (a restore resumes in the past). In a
  // fresh clone the kernel's time-setting path costs ~45 ms of emulated CPU under TCG, so it
  // runs after the 204 has gone out, in the same tick: no later request sees the old time.
  // It cannot fail for validation (done above); if the kernel refuses, the console says so.
  if (clockMs !== undefined && state.opts.mode === 'guest' && clockMs > Date.now() + 1000) {
    const ms = clockMs;
    return () => {
      try {
        setGuestClock(ms);
      } catch (e) {
        console.error(
          JSON.stringify({ msg: 'envd: /init could not set the clock', error: String(e) }),
        );
      }
    };
  }
  return () => {};
}
