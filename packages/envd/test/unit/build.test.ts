import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { processv1 } from '@wrenn/proto';
import { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEnvd, envdBundleHash } from '../../src/build.ts';
import { CLOCK_ADDON } from '../../src/clock.ts';

let out: string;
let built: { files: string[]; hash: string };

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'wrenn-envd-bundle-'));
  built = await buildEnvd(out);
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('buildEnvd', () => {
  it('writes envd.mjs and node-pty (native addon + JS) beside it', async () => {
    expect(built.files).toContain('envd.mjs');
    expect(built.files).toContain('node_modules/node-pty/build/Release/pty.node');
    expect(built.files).toContain('node_modules/node-pty/lib/index.js');
    for (const f of built.files) expect((await stat(join(out, f))).size).toBeGreaterThan(0);
  });

  it('compiles the clock addon beside the bundle, loadable and validating its input', async () => {
    expect(built.files).toContain(CLOCK_ADDON);
    // Loaded, not called with a valid time: that would move this host's clock.
    const addon = createRequire(import.meta.url)(join(out, CLOCK_ADDON)) as {
      setClock(ms: unknown): void;
    };
    expect(typeof addon.setClock).toBe('function');
    expect(() => addon.setClock('soon')).toThrow(/ms must be a positive number/);
    expect(() => addon.setClock(-5)).toThrow(TypeError);
  });

  it('reports the same hash envdBundleHash computes without writing', async () => {
    expect(built.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await envdBundleHash()).toBe(built.hash);
  });

  it('the bundle runs on its own: /health 204 and a PTY process (node-pty resolves from the bundle dir)', async () => {
    // cwd is / so nothing can resolve from the repository's node_modules.
    const child = spawn(
      process.execPath,
      [
        join(out, 'envd.mjs'),
        '--host',
        '--port',
        '0',
        '--listen',
        '127.0.0.1',
        '--default-user',
        'root',
      ],
      {
        cwd: '/',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      let log = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (d) => {
          log += d;
          const m = /"port":(\d+)/.exec(log);
          if (m) resolve(Number(m[1]));
        });
        child.stderr.on('data', (d) => {
          log += d;
        });
        child.once('exit', (c) => reject(new Error(`bundle exited ${c}: ${log}`)));
      });
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(204);
      const rpc = createClient(
        processv1.Process,
        createConnectTransport({
          baseUrl: `http://127.0.0.1:${port}`,
          httpVersion: '1.1',
          useBinaryFormat: true,
        }),
      );
      let text = '';
      let exit: number | undefined;
      for await (const m of rpc.start({
        process: { cmd: '/bin/sh', args: ['-c', 'tty >/dev/null && echo is-a-tty'] },
        pty: { size: { cols: 80, rows: 24 } },
      })) {
        const ev = m.event?.event;
        if (ev?.case === 'data')
          text += new TextDecoder().decode(ev.value.output.value as Uint8Array);
        if (ev?.case === 'end') exit = ev.value.exitCode;
      }
      expect(text).toContain('is-a-tty');
      expect(exit).toBe(0);

      // The bundle swaps in native base64 for the JSON codec (what the SDK speaks): output
      // must arrive byte-exact, whatever its length modulo 3.
      const Ctor = Sandbox as unknown as new (o: Record<string, unknown>) => Sandbox;
      const sbx = new Ctor({
        sandboxId: 'bundle',
        envdVersion: '0.6.4',
        debug: true,
        sandboxUrl: `http://127.0.0.1:${port}`,
      });
      const want = execFileSync('seq', ['1', '300000'], { maxBuffer: 1 << 24 }).toString();
      expect((await sbx.commands.run('seq 1 300000', { timeoutMs: 0 })).stdout).toBe(want);
      for (const s of ['a', 'ab', 'abc', 'abcd']) {
        expect((await sbx.commands.run(`printf ${s}`)).stdout).toBe(s);
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
});
