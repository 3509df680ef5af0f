import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sandbox } from 'e2b';
import { envdClients } from '../src/client.ts';

const envdDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const MAIN_TS = join(envdDir, 'src', 'main.ts');

export interface HostEnvd {
  url: string;
  port: number;
  pid: number;
  /** Stands in for /home: each user's home is `<homeRoot>/<name>`. */
  homeRoot: string;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
  /** Resident set size of the envd process, bytes (from /proc). */
  rss(): Promise<number>;
}

/**
 * envd as a real host process on a free port (`--port 0`), homes under a fresh temp dir.
 * Resolves once it logged that it listens.
 */
export async function startHostEnvd(
  extraArgs: string[] = [],
  opts: { defaultUser?: string } = {},
): Promise<HostEnvd> {
  const homeRoot = await mkdtemp(join(tmpdir(), 'wrenn-envd-test-'));
  await chmod(homeRoot, 0o755); // like /home: other users may pass through to their homes
  const args = [
    '--import',
    'tsx',
    MAIN_TS,
    '--port',
    '0',
    '--listen',
    '127.0.0.1',
    '--home-root',
    homeRoot,
  ];
  args.push('--default-user', opts.defaultUser ?? 'root', ...extraArgs);
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WRENN_LOG_LEVEL: 'silent' },
  });
  let out = '';
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /"msg":"envd listening".*"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) =>
      reject(new Error(`envd exited with ${code} before listening:\n${out}`)),
    );
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    homeRoot,
    child,
    log: () => out,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(homeRoot, { recursive: true, force: true });
    },
    async rss() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
  };
}

/** The official SDK in debug mode (no control plane), pointed at this envd. */
export function sdk(envd: HostEnvd, opts: { accessToken?: string } = {}): Sandbox {
  // Sandbox.connect's debug branch cannot carry an access token; the constructor can.
  const Ctor = Sandbox as unknown as new (o: Record<string, unknown>) => Sandbox;
  return new Ctor({
    sandboxId: 'debug',
    envdVersion: '0.6.4',
    envdAccessToken: opts.accessToken,
    debug: true,
    sandboxUrl: envd.url,
  });
}

/** Raw Connect clients (binary or JSON codec) for what the SDK does not expose. */
export function rawClients(
  envd: HostEnvd,
  opts: { binary?: boolean; headers?: Record<string, string> } = {},
) {
  return envdClients(envd.url, { binary: opts.binary ?? false, headers: opts.headers });
}

/** Poll until `fn` returns a truthy value or the attempts run out (state, not wall-clock, decides). */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  attempts = 200,
  stepMs = 25,
): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met${last ? `: ${String(last)}` : ''}`);
}
