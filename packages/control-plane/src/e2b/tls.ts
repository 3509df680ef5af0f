import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WrennError } from '@wrenn/common';
import type { BuiltServer } from '../http/server.ts';

const execFileP = promisify(execFile);

export interface SandboxTlsOptions {
  /** The sandbox domain: the certificate covers `<domain>` and `*.<domain>`. */
  domain: string;
  host?: string;
  /** 443 for the SDK's `https://<port>-<id>.<domain>`; 0 = any free port (tests). */
  port: number;
  /** PEM files the operator provides; both or neither. */
  certFile?: string;
  keyFile?: string;
  /** Where a generated self-signed pair is kept (and reused): `<dir>/tls/`. */
  dir: string;
}

export interface SandboxTls {
  url: string;
  port: number;
  /** The certificate served (PEM), so a client can trust a self-signed one. */
  certPem: string;
  close(): Promise<void>;
}

/**
 * Domain mode over TLS: an HTTPS listener in front of the same handler as the plain port,
 * so `https://<port>-<id>.<domain>` reaches the gateway (and `https://api.<domain>` the API,
 * which is where the e2b SDK sends API calls when only E2B_DOMAIN is set). Requests and
 * upgrades are handed to the control plane's own HTTP server: one routing code path.
 *
 * @example
 *   const tls = await serveSandboxTls(cp.server, { domain: 'sbx.example.com', port: 443, dir });
 */
export async function serveSandboxTls(
  server: BuiltServer,
  opts: SandboxTlsOptions,
): Promise<SandboxTls> {
  if (Boolean(opts.certFile) !== Boolean(opts.keyFile)) {
    throw new WrennError(
      'invalid_argument',
      'give both a TLS certificate and its key, or neither (a self-signed pair is generated)',
    );
  }
  const pair =
    opts.certFile && opts.keyFile
      ? { cert: opts.certFile, key: opts.keyFile }
      : await selfSigned(opts.dir, opts.domain);
  const [cert, key] = await Promise.all([readFile(pair.cert, 'utf8'), readFile(pair.key, 'utf8')]);
  const plain = server.app.server;
  const tls = https.createServer({ cert, key }, (req, res) => plain.emit('request', req, res));
  tls.on('upgrade', (req, socket, head) => plain.emit('upgrade', req, socket, head));
  await new Promise<void>((resolve, reject) => {
    tls.once('error', reject);
    tls.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (tls.address() as AddressInfo).port;
  return {
    url: `https://${opts.domain}:${port}`,
    port,
    certPem: cert,
    close: () =>
      new Promise<void>((resolve) => {
        tls.closeAllConnections();
        tls.close(() => resolve());
      }),
  };
}

/** A self-signed certificate for `<domain>` and `*.<domain>`, made once with openssl. */
async function selfSigned(dir: string, domain: string): Promise<{ cert: string; key: string }> {
  if (!/^[a-z0-9.-]+$/i.test(domain))
    throw new WrennError('invalid_argument', `invalid sandbox domain '${domain}'`);
  const tlsDir = join(dir, 'tls');
  const cert = join(tlsDir, `${domain}.crt`);
  const key = join(tlsDir, `${domain}.key`);
  if (existsSync(cert) && existsSync(key)) return { cert, key };
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  try {
    await execFileP('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '825',
      '-subj',
      `/CN=${domain}`,
      '-addext',
      `subjectAltName=DNS:${domain},DNS:*.${domain}`,
      '-keyout',
      key,
      '-out',
      cert,
    ]);
  } catch (e) {
    throw new WrennError(
      'failed_precondition',
      `could not generate a self-signed certificate with openssl: ${(e as Error).message}`,
    );
  }
  await chmod(key, 0o600);
  return { cert, key };
}
