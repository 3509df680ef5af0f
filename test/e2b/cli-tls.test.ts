import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { httpsGet } from '../../packages/control-plane/test/support/https-get.ts';

/**
 * `wrenn control-plane --sandbox-domain D --sandbox-tls-port N` serves the sandbox domain
 * and `api.D` over HTTPS with a generated self-signed certificate (docs/e2b.md, Domain
 * mode). The routing behind it is checked on real VMs in compat.test.ts.
 */
const WRENN = fileURLToPath(new URL('../../packages/cli/bin/wrenn.mjs', import.meta.url));
const DOMAIN = 'sbx.wrenn.test';
const dir = mkdtempSync(join(tmpdir(), 'wrenn-cli-tls-'));
let child: ChildProcess | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

it('wrenn control-plane --sandbox-tls-port serves api.<domain> and sandbox hosts over TLS', async () => {
  child = spawn(
    process.execPath,
    [
      WRENN,
      'control-plane',
      '--dir',
      dir,
      '--port',
      '0',
      '--sandbox-domain',
      DOMAIN,
      '--sandbox-tls-port',
      '0',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DATABASE_URL: '' },
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let err = '';
    createInterface({ input: child!.stderr! }).on('line', (line) => {
      err += `${line}\n`;
      const m = /sandbox domain over TLS on https:\/\/[^:]+:(\d+)/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child!.once('exit', (code) =>
      reject(new Error(`wrenn control-plane exited (${code}): ${err}`)),
    );
  });
  const ca = readFileSync(join(dir, 'tls', `${DOMAIN}.crt`), 'utf8');
  const api = await httpsGet(port, `api.${DOMAIN}`, '/health', ca);
  expect(api.status).toBe(200);
  expect(JSON.parse(api.body)).toMatchObject({ status: 'ok' });
  const unknown = await httpsGet(port, `49983-nosuchsandbox.${DOMAIN}`, '/health', ca);
  expect(unknown.status).toBe(502);
  // E2B's error shape on the E2B routes, over TLS too.
  const noKey = await httpsGet(port, `api.${DOMAIN}`, '/v2/sandboxes', ca);
  expect(noKey.status).toBe(401);
  expect(JSON.parse(noKey.body)).toMatchObject({ code: 401 });
});
