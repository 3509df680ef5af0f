import { timingSafeEqual } from 'node:crypto';

export const HOST_TOKEN_HEADER = 'x-wrenn-host-token';

/** Constant-time comparison of the presented host token with the agent's. */
export function hostTokenOk(
  presented: string | string[] | null | undefined,
  expected: string,
): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
