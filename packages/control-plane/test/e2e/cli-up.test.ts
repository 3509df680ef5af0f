import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '@wrenn/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WRENN_BIN, wrenn } from '../support/cli.ts';
import { agentDir, killVmsUnder } from '../support/real-agent.ts';
import { wrennInTerminal } from '../support/terminal.ts';

/**
 * End to end through the CLI with real VMs: `wrenn up` (control plane + agent child,
 * SQLite), then create, exec, cp both ways, an interactive shell driven through a PTY,
 * pause, resume, a restart of `wrenn up` that re-adopts the running sandbox, and kill —
 * each a separate `wrenn` process reading `$WRENN_DIR/env`.
 */
describe('wrenn up + sandbox commands (real VMs)', () => {
  let dir: string;
  let work: string;
  let up: ChildProcess;
  let upOut = '';
  let env: Record<string, string>;
  let id = '';

  let port = 0;
  /** `wrenn up` as a child; resolves when it printed `Wrenn is ready` and the export lines. */
  const startUp = async () => {
    upOut = '';
    up = spawn(process.execPath, [WRENN_BIN, 'up', '--dir', dir, '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WRENN_LOG_LEVEL: 'warn' },
    });
    up.stderr!.on('data', (d) => {
      upOut += String(d);
    });
    await new Promise<void>((resolve, reject) => {
      up.stdout!.on('data', (d) => {
        upOut += String(d);
        if (/Wrenn is ready\n(export .*\n){5}/.test(upOut)) resolve();
      });
      up.once('exit', (code) => reject(new Error(`wrenn up exited (${code}):\n${upOut}`)));
    });
  };

  beforeAll(async () => {
    dir = await agentDir(inject('wrennDir' as never));
    work = mkdtempSync(join(tmpdir(), 'wrenn-e2e-'));
    port = await freeLoopbackPort();
    await startUp();
    // Only $WRENN_DIR: the CLI finds the URL and key in $WRENN_DIR/env, as a user's shell would.
    env = { WRENN_DIR: dir, WRENN_API_URL: '', WRENN_API_KEY: '', E2B_SANDBOX_URL: '' };
  });

  afterAll(async () => {
    if (id) await wrenn(['sandbox', 'kill', id], env).catch(() => undefined);
    if (up && up.exitCode === null) {
      up.kill('SIGTERM');
      await new Promise((r) => up.once('exit', r));
    }
    killVmsUnder([dir]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('prints Wrenn is ready with the five export lines, also written 0600 to $WRENN_DIR/env', () => {
    const lines = upOut.slice(upOut.indexOf('Wrenn is ready')).split('\n').slice(1, 6);
    expect(lines.map((l) => l.split('=')[0])).toEqual([
      'export WRENN_API_URL',
      'export WRENN_API_KEY',
      'export E2B_API_URL',
      'export E2B_SANDBOX_URL',
      'export E2B_API_KEY',
    ]);
    expect(lines[1]!.split('=')[1]).toMatch(/^wrn_/);
    const file = join(dir, 'env');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe(`${lines.join('\n')}\n`);
    expect(statSync(join(dir, 'admin-key')).mode & 0o777).toBe(0o600);
  });

  it('lists the agent as a ready host', async () => {
    const hosts = JSON.parse((await wrenn(['hosts', '--json'], env)).stdout);
    expect(hosts).toHaveLength(1);
    expect(hosts[0].status).toBe('ready');
  });

  it('creates a sandbox and runs a command in it', async () => {
    const c = await wrenn(
      ['sandbox', 'create', '-t', 'minimal', '--memory', '256', '--timeout', '0'],
      env,
    );
    expect(c.code, c.stderr).toBe(0);
    id = c.stdout.trim();
    const r = await wrenn(['sandbox', 'exec', id, 'echo "hi from $(uname -s)"; exit 3'], env);
    expect(r).toMatchObject({ code: 3, stdout: 'hi from Linux\n' });
  });

  it('copies a file in and back out, byte for byte', async () => {
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7 + 3) % 256));
    writeFileSync(join(work, 'in.bin'), data);
    expect(
      (await wrenn(['sandbox', 'cp', join(work, 'in.bin'), `${id}:/tmp/in.bin`], env)).code,
    ).toBe(0);
    expect((await wrenn(['sandbox', 'exec', id, 'wc -c < /tmp/in.bin'], env)).stdout.trim()).toBe(
      '300000',
    );
    expect(
      (await wrenn(['sandbox', 'cp', `${id}:/tmp/in.bin`, join(work, 'out.bin')], env)).code,
    ).toBe(0);
    expect(readFileSync(join(work, 'out.bin')).equals(data)).toBe(true);
  });

  it('runs an interactive shell through a PTY', async () => {
    const t = wrennInTerminal(['sandbox', 'shell', id, '--cmd', '/bin/sh'], env, 90, 20);
    t.term.write('echo "product=$((6*7))"; stty size\r');
    await t.until(/product=42/);
    await t.until(/20 90/);
    t.term.write('exit 4\r');
    expect(await t.exit).toBe(4);
  });

  it('pauses and resumes with its files', async () => {
    expect((await wrenn(['sandbox', 'pause', id], env)).stdout.trim()).toBe(`${id} paused`);
    const listed = JSON.parse((await wrenn(['sandbox', 'ls', '--json'], env)).stdout);
    expect(listed.find((s: any) => s.sandboxId === id).status).toBe('paused');
    expect((await wrenn(['sandbox', 'resume', id], env)).stdout.trim()).toBe(`${id} running`);
    expect((await wrenn(['sandbox', 'exec', id, 'wc -c < /tmp/in.bin'], env)).stdout.trim()).toBe(
      '300000',
    );
  });

  it('stops cleanly on SIGTERM, taking its agent down', async () => {
    up.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => up.once('exit', r));
    expect(code).toBe(0);
    const after = await wrenn(['hosts'], env);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('cannot reach the Wrenn API');
  });

  it('starts again on the same dir: same host (agent.json reused), the running sandbox re-adopted', async () => {
    const hostBefore = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')).hostId;
    await startUp();
    const hosts = JSON.parse((await wrenn(['hosts', '--json'], env)).stdout);
    expect(hosts.map((h: any) => [h.hostId, h.status])).toEqual([[hostBefore, 'ready']]);
    // The agent listens on a new port after a restart: exec proves the control plane follows it.
    const r = await wrenn(['sandbox', 'exec', id, 'wc -c < /tmp/in.bin'], env);
    expect(r.stdout.trim(), r.stderr).toBe('300000');
    expect((await wrenn(['sandbox', 'kill', id], env)).code).toBe(0);
    expect((await wrenn(['sandbox', 'info', id, '--json'], env)).stdout).toContain(
      '"status": "stopped"',
    );
    id = '';
  });
});
