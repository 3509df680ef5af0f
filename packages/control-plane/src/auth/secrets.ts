import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** `wrn_` + 32 random base62-ish characters: the prefix makes leaked keys greppable. */
export function newApiKey(): string {
  return `wrn_${randomBytes(24).toString('base64url')}`;
}

/** Host and registration tokens: distinct prefixes so a token is never mistaken for a key. */
export function newToken(prefix: 'wrh' | 'wrr' | 'wre'): string {
  return `${prefix}_${randomBytes(24).toString('base64url')}`;
}

/** Keys are random with 192 bits of entropy, so a fast hash is enough (no password KDF). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretsEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}
