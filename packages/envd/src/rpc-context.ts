import { existsSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import type { HandlerContext } from '@connectrpc/connect';
import { basicAuthUser, resolveUser } from './auth.ts';
import { toConnectError } from './errors.ts';
import type { EnvdState } from './state.ts';
import type { User } from './users.ts';

/** The user a Connect call runs as (Basic auth username, else the default user). */
export async function rpcUser(state: EnvdState, ctx: HandlerContext): Promise<User> {
  const user = resolveUser(
    state,
    basicAuthUser(ctx.requestHeader.get('authorization') ?? undefined),
  );
  await ensureHome(state, user);
  return user;
}

/** Host mode keeps homes under --home-root; make one on first use, as `useradd -m` would. */
export async function ensureHome(state: EnvdState, user: User): Promise<void> {
  if (!state.opts.homeRoot || existsSync(user.home)) return;
  await mkdir(user.home, { recursive: true, mode: 0o755 });
  await chown(user.home, user.uid, user.gid);
}

/** Seconds between keepalive events on a stream; the SDK asks via Keepalive-Ping-Interval. */
export function keepaliveMs(ctx: HandlerContext): number {
  const s = Number(ctx.requestHeader.get('keepalive-ping-interval'));
  return Number.isFinite(s) && s > 0 ? s * 1000 : 30_000;
}

/** Run a unary handler, turning domain errors into Connect errors at this edge. */
export async function unary<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toConnectError(e);
  }
}

/** Same for a server-streaming handler. */
export async function* streaming<T>(gen: () => AsyncGenerator<T>): AsyncGenerator<T> {
  try {
    yield* gen();
  } catch (e) {
    throw toConnectError(e);
  }
}
