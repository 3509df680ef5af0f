import { createHash, timingSafeEqual } from 'node:crypto';
import { WrennError } from '@wrenn/common/errors.ts';
import type { EnvdState } from './state.ts';
import { lookupUser, type User } from './users.ts';

/** X-Access-Token check; a no-op until /init set a token. */
export function checkAccessToken(state: EnvdState, presented: string | undefined): void {
  if (state.accessToken === undefined) return;
  if (presented === undefined || !safeEqual(presented, state.accessToken)) {
    throw new WrennError('unauthenticated', 'missing or invalid X-Access-Token');
  }
}

export function hasValidAccessToken(state: EnvdState, presented: string | undefined): boolean {
  return (
    state.accessToken !== undefined &&
    presented !== undefined &&
    safeEqual(presented, state.accessToken)
  );
}

/** Username from `Authorization: Basic base64("<user>:")`, as the e2b SDK sends it. */
export function basicAuthUser(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const name = decoded.split(':')[0];
  return name || undefined;
}

/** The request's user: the named one, or the default from /init (or startup). */
export function resolveUser(state: EnvdState, name: string | undefined): User {
  return lookupUser(name || state.defaultUser, state.opts.homeRoot);
}

/**
 * The e2b SDK's signed-URL scheme: `v1_` + unpadded base64(sha256(
 * `<path>:<operation>:<user>:<token>[:<expiration>]`)), expiration in unix seconds.
 */
export function fileSignature(p: {
  path: string;
  operation: 'read' | 'write';
  username: string;
  token: string;
  expiration?: number;
}): string {
  let raw = `${p.path}:${p.operation}:${p.username}:${p.token}`;
  if (p.expiration !== undefined) raw += `:${p.expiration}`;
  return `v1_${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

/** Throws unauthenticated unless `signature` signs this path/operation/user and is unexpired. */
export function verifyFileSignature(
  state: EnvdState,
  p: {
    path: string;
    operation: 'read' | 'write';
    username: string;
    signature: string;
    expiration?: string;
  },
  nowSeconds = Math.floor(Date.now() / 1000),
): void {
  if (state.accessToken === undefined) {
    throw new WrennError(
      'unauthenticated',
      'signature given but envd has no access token to check it',
    );
  }
  let expiration: number | undefined;
  if (p.expiration !== undefined && p.expiration !== '') {
    expiration = Number(p.expiration);
    if (!Number.isInteger(expiration))
      throw new WrennError('invalid_argument', 'signature_expiration must be unix seconds');
    if (expiration < nowSeconds) throw new WrennError('unauthenticated', 'signature expired');
  }
  const want = fileSignature({ ...p, token: state.accessToken, expiration });
  if (!safeEqual(want, p.signature)) throw new WrennError('unauthenticated', 'invalid signature');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
