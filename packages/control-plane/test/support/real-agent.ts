import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WRENN_BIN } from './cli.ts';

/**
 * A WRENN_DIR for one real agent: its own sandboxes/, the cached kernels and public images
 * (built once by the vm project's global setup) linked in, as test/e2b/wrenn.ts does.
 */
export async function agentDir(cachedDir: string | undefined, image = 'minimal'): Promise<string> {
  if (!cachedDir)
    throw new Error(
      "no cached WRENN_DIR: the vm project's global setup must provide inject('wrennDir')",
    );
  if (!existsSync(join(cachedDir, 'images', 'public', image)))
    throw new Error(`the cached WRENN_DIR ${cachedDir} has no ${image} image`);
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-host-'));
  await symlink(join(cachedDir, 'kernels'), join(dir, 'kernels'));
  // Each image dir is private, only its built files are linked: the agent writes its template
  // snapshot next to them, and that snapshot's disk names its backing file through this
  // WRENN_DIR — shared, it would outlive this dir and break every later clone.
  for (const name of readdirSync(join(cachedDir, 'images', 'public'))) {
    const src = join(cachedDir, 'images', 'public', name);
    const dst = join(dir, 'images', 'public', name);
    await mkdir(dst, { recursive: true });
    for (const file of ['manifest.json', 'rootfs.ext4']) {
      if (existsSync(join(src, file))) await symlink(join(src, file), join(dst, file));
    }
  }
  return dir;
}

export interface AgentProcess {
  child: ChildProcess;
  url: string;
  output: string[];
  /** SIGTERM and wait (VMs stay up for re-adoption). */
  stop(): Promise<void>;
  /** SIGKILL: the crash case. */
  kill(): Promise<void>;
}

/** `wrenn agent …` as a real child process; resolves once it printed `agent-ready`. */
export async function spawnAgent(dir: string, args: string[], port = 0): Promise<AgentProcess> {
  const child = spawn(
    process.execPath,
    [WRENN_BIN, 'agent', '--dir', dir, '--port', String(port), ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WRENN_LOG_LEVEL: process.env.WRENN_TEST_LOG ?? 'warn' },
    },
  );
  const output: string[] = [];
  child.stderr!.on('data', (d) => output.push(String(d)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      if (line.includes('"agent-ready"')) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) =>
      reject(new Error(`agent exited (${code}) before ready:\n${output.join('\n')}`)),
    );
  });
  return {
    child,
    url,
    output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Last resort after a test: no QEMU started under these dirs outlives it. */
export function killVmsUnder(dirs: string[]): number {
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes('qemu-system') && dirs.some((d) => cmd.includes(d))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      } catch {
        // already gone
      }
    }
  }
  return killed;
}
