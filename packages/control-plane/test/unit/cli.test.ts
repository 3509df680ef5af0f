import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { wrenn } from '../support/cli.ts';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';
import { wrennInTerminal } from '../support/terminal.ts';

// Starting PostgreSQL, envd and servers takes seconds on a busy 2-core machine: hooks get room.
vi.setConfig({ hookTimeout: 120_000 });

// The CLI as a real process against a real control plane (fake agent over a real envd):
// argument parsing, tables vs --json, exit codes, cp both ways, and the PTY shell.
// Each CLI run is a fresh Node process (~1-4 s on a busy 2-core machine): generous per-test budget.
describe('wrenn CLI against the /v1 API', { timeout: 240_000 }, () => {
  let c: TestCluster;
  let env: Record<string, string>;
  let work: string;
  beforeAll(async () => {
    c = await startTestCluster('sqlite', undefined);
    work = mkdtempSync(join(tmpdir(), 'wrenn-cli-'));
    env = { WRENN_API_URL: c.t.url, WRENN_API_KEY: c.t.adminKey, WRENN_DIR: join(work, 'dir') };
  });
  afterAll(async () => {
    await c?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('creates, lists (table and --json), shows, pauses, resumes and kills', async () => {
    const created = await wrenn(
      ['sandbox', 'create', '-t', 'minimal', '-m', 'role=cli', '--timeout', '600'],
      env,
    );
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    expect(id).toMatch(/^[a-z0-9]{20}$/);
    const table = await wrenn(['sandbox', 'ls'], env);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+TEMPLATE\s+STATUS/);
    expect(table.stdout).toContain(`${id}  minimal   running`);
    const json = JSON.parse(
      (await wrenn(['sandbox', 'ls', '--json', '-m', 'role=cli'], env)).stdout,
    );
    expect(json.map((s: any) => s.sandboxId)).toEqual([id]);
    expect((await wrenn(['sandbox', 'info', id], env)).stdout).toMatch(/status:\s+running/);
    expect((await wrenn(['sandbox', 'pause', id], env)).stdout.trim()).toBe(`${id} paused`);
    expect((await wrenn(['sandbox', 'resume', id, '--json'], env)).stdout).toContain(
      '"status": "running"',
    );
    expect((await wrenn(['sandbox', 'kill', id], env)).code).toBe(0);
    const gone = await wrenn(['sandbox', 'kill', id], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`wrenn: not_found: sandbox '${id}' not found (already stopped)\n`);
  });

  it("passes the command's output through and makes its exit code wrenn's", async () => {
    const id = (await wrenn(['sandbox', 'create', '-t', 'minimal'], env)).stdout.trim();
    const r = await wrenn(['sandbox', 'exec', id, 'echo out; echo err >&2; exit 5'], env);
    expect(r).toMatchObject({ code: 5, stdout: 'out\n', stderr: 'err\n' });
    const argv = await wrenn(
      ['sandbox', 'exec', id, '--', '/bin/sh', '-c', 'printf "%s|" "$@"', 'x', 'a b', 'c'],
      env,
    );
    expect(argv.stdout).toBe('a b|c|');
    const bin = await wrenn(['sandbox', 'exec', id, "printf '\\001\\377'"], env);
    expect([...bin.raw]).toEqual([1, 255]);
  });

  it('copies files both ways, byte for byte', async () => {
    const id = (await wrenn(['sandbox', 'create', '-t', 'minimal'], env)).stdout.trim();
    const local = join(work, 'in.bin');
    const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
    writeFileSync(local, data);
    expect((await wrenn(['sandbox', 'cp', local, `${id}:/tmp/cli-${id}.bin`], env)).code).toBe(0);
    const back = join(work, 'out.bin');
    expect((await wrenn(['sandbox', 'cp', `${id}:/tmp/cli-${id}.bin`, back], env)).code).toBe(0);
    expect(readFileSync(back).equals(data)).toBe(true);
    const both = await wrenn(['sandbox', 'cp', `${id}:/a`, `${id}:/b`], env);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('exactly one side');
  });

  it('drives an interactive shell through a PTY, with resize', async () => {
    const id = (await wrenn(['sandbox', 'create', '-t', 'minimal'], env)).stdout.trim();
    const t = wrennInTerminal(['sandbox', 'shell', id, '--cmd', '/bin/sh'], env, 100, 30);
    t.term.write('echo "sum=$((6*7))"\r');
    await t.until(/sum=42/);
    t.term.write('stty size\r');
    await t.until(/30 100/);
    t.term.resize(120, 40);
    // The resize travels as an envd Update, after which `stty size` sees it; ask until it does.
    for (let i = 0; i < 50 && !/40 120/.test(t.screen()); i++) {
      t.term.write('stty size\r');
      await Promise.race([t.until(/40 120/), new Promise((r) => setTimeout(r, 200))]);
    }
    expect(t.screen()).toMatch(/40 120/);
    t.term.write('exit 3\r');
    expect(await t.exit).toBe(3);
  });

  it('lists templates, hosts and keys, and creates a key', async () => {
    expect((await wrenn(['templates'], env)).stdout).toMatch(/^base\s+public\s+builtin/m);
    const hosts = JSON.parse((await wrenn(['hosts', '--json'], env)).stdout);
    expect(hosts[0].hostId).toBe(c.agents[0]!.hostId);
    const key = (await wrenn(['keys', 'create', 'ci'], env)).stdout.trim();
    expect(key).toMatch(/^wrn_/);
    const asNewKey = await wrenn(['keys', '--json'], { ...env, WRENN_API_KEY: key });
    expect(JSON.parse(asNewKey.stdout).map((k: any) => k.name)).toContain('ci');
  });

  it('fails with one clear line for bad input and missing configuration', async () => {
    const bad = await wrenn(['sandbox', 'create', '--vcpus', 'x'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("wrenn: invalid_argument: --vcpus must be a whole number, got 'x'\n");
    const server = await wrenn(['sandbox', 'create', '--memory', '1'], env);
    expect(server.stderr).toMatch(/^wrenn: invalid_argument: body\.memoryMb/);
    const noConfig = await wrenn(['sandbox', 'ls'], {
      WRENN_API_URL: '',
      WRENN_API_KEY: '',
      WRENN_DIR: join(work, 'empty'),
    });
    expect(noConfig.code).toBe(1);
    expect(noConfig.stderr).toContain('run `wrenn up`');
  });
});
