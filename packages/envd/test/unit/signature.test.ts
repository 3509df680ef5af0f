import { getSignature } from 'e2b';
import { describe, expect, it } from 'vitest';
import { fileSignature, verifyFileSignature } from '../../src/auth.ts';
import { defaultOptions } from '../../src/config.ts';
import { EnvdState } from '../../src/state.ts';

describe('signed /files URLs', () => {
  it('computes exactly what the e2b SDK signs, with and without expiry', async () => {
    const sdkSig = await getSignature({
      path: '/a b/ü.txt',
      operation: 'read',
      user: 'user',
      envdAccessToken: 'tok',
    });
    expect(
      fileSignature({ path: '/a b/ü.txt', operation: 'read', username: 'user', token: 'tok' }),
    ).toBe(sdkSig.signature);
    const withExp = await getSignature({
      path: 'x',
      operation: 'write',
      user: undefined,
      expirationInSeconds: 30,
      envdAccessToken: 'tok',
    });
    expect(
      fileSignature({
        path: 'x',
        operation: 'write',
        username: '',
        token: 'tok',
        expiration: withExp.expiration!,
      }),
    ).toBe(withExp.signature);
  });

  it('verifies a good signature and rejects expired, foreign and unsigned-token cases', () => {
    const state = new EnvdState(defaultOptions('host'));
    const sig = (exp?: number) =>
      fileSignature({ path: 'p', operation: 'read', username: 'u', token: 'tok', expiration: exp });
    expect(() =>
      verifyFileSignature(state, { path: 'p', operation: 'read', username: 'u', signature: sig() }),
    ).toThrow(/no access token/);
    state.accessToken = 'tok';
    verifyFileSignature(state, { path: 'p', operation: 'read', username: 'u', signature: sig() });
    verifyFileSignature(
      state,
      { path: 'p', operation: 'read', username: 'u', signature: sig(1000), expiration: '1000' },
      999,
    );
    expect(() =>
      verifyFileSignature(
        state,
        { path: 'p', operation: 'read', username: 'u', signature: sig(1000), expiration: '1000' },
        1001,
      ),
    ).toThrow(/expired/);
    expect(() =>
      verifyFileSignature(state, {
        path: 'p',
        operation: 'write',
        username: 'u',
        signature: sig(),
      }),
    ).toThrow(/invalid signature/);
    expect(() =>
      verifyFileSignature(state, {
        path: 'p',
        operation: 'read',
        username: 'root',
        signature: sig(),
      }),
    ).toThrow(/invalid signature/);
  });
});
