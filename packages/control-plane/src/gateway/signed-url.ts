import type { IncomingMessage } from 'node:http';

/**
 * What a signed envd `/files` URL carries (the e2b SDK's `uploadUrl()`/`downloadUrl()`):
 * `signature = v1_` + base64(sha256(`path:operation:username:token[:expiration]`)).
 * The URL names no sandbox; the token that signed it does.
 */
export interface SignedFiles {
  path: string;
  operation: 'read' | 'write';
  username: string;
  signature: string;
  expiration?: number;
}

export function signedFileRequest(req: IncomingMessage): SignedFiles | undefined {
  if (!req.url?.startsWith('/files?')) return undefined;
  if (req.method !== 'GET' && req.method !== 'POST') return undefined;
  const q = new URL(req.url, 'http://gateway').searchParams;
  const signature = q.get('signature');
  if (!signature?.startsWith('v1_')) return undefined;
  const exp = q.get('signature_expiration');
  const expiration = exp ? Number(exp) : undefined;
  if (expiration !== undefined && !Number.isInteger(expiration)) return undefined;
  return {
    path: q.get('path') ?? '',
    operation: req.method === 'GET' ? 'read' : 'write',
    // The SDK signs an absent username as the empty string.
    username: q.get('username') ?? '',
    signature,
    expiration,
  };
}
