import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { envdClients } from '@wrenn/envd/client.ts';
import { agentv1 } from '@wrenn/proto';

/**
 * The agent as a real child process (`wrenn agent`), for tests that restart it or kill it
 * at a crash point. Every process it starts is remembered and killed at exit.
 */
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const WRENN = join(REPO, 'packages/cli/bin/wrenn.mjs');
export const TOKEN = 'vm-test-host-token';

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface AgentProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code or signal once the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
  client: ReturnType<typeof agentClient>;
}

export function agentClient(url: string, token = TOKEN) {
  return createClient(
    agentv1.AgentService,
    createConnectTransport({
      baseUrl: url,
      httpVersion: '1.1',
      defaultTimeoutMs: 600_000,
      interceptors: [
        (next) => async (req) => {
          req.header.set('x-wrenn-host-token', token);
          return next(req);
        },
      ],
    }),
  );
}

/**
 * Start `wrenn agent --dir <dir>`; resolves once it serves, or — with `crashAt` — also
 * when it dies before serving (a crash point during startup work never happens: crash
 * points are in lifecycle verbs only).
 */
export async function spawnAgent(
  dir: string,
  opts: {
    crashAt?: string;
    port?: number;
    extraArgs?: string[];
    env?: Record<string, string>;
  } = {},
): Promise<AgentProcess> {
  const child = spawn(
    process.execPath,
    [
      WRENN,
      'agent',
      '--dir',
      dir,
      '--port',
      String(opts.port ?? 0),
      '--token',
      TOKEN,
      ...(opts.extraArgs ?? []),
    ],
    {
      env: {
        ...process.env,
        WRENN_LOG_LEVEL: 'debug',
        ...(opts.crashAt ? { WRENN_CRASH_AT: opts.crashAt } : {}),
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      r({ code, signal });
    }),
  );
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setInterval(() => {
      const m = /"event":"agent-ready","url":"([^"]+)"/.exec(out);
      if (m) {
        clearInterval(timer);
        resolveUrl(m[1]!);
      }
    }, 20);
    void exited.then((e) => {
      clearInterval(timer);
      reject(
        new Error(`agent exited before serving (${e.code ?? e.signal}):\n${out.slice(-4000)}`),
      );
    });
  });
  return {
    url,
    child,
    output: () => out,
    exited,
    client: agentClient(url),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** envd's Connect clients and /files through the agent's proxy. */
export function envdVia(agentUrl: string, sandboxId: string, accessToken?: string) {
  const base = `${agentUrl}/proxy/${sandboxId}/49983`;
  const headers: Record<string, string> = {
    'x-wrenn-host-token': TOKEN,
    ...(accessToken ? { 'x-access-token': accessToken } : {}),
  };
  const { process: proc } = envdClients(base, { headers });
  return {
    base,
    /** Run a command to completion; returns stdout, stderr and exit code. */
    async run(
      cmd: string,
      args: string[] = [],
      user = 'root',
    ): Promise<{ stdout: string; stderr: string; exitCode: number }> {
      let stdout = '';
      let stderr = '';
      let exitCode = -1;
      const stream = proc.start(
        { process: { cmd, args, envs: {} } },
        {
          headers: {
            ...headers,
            authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}`,
          },
          timeoutMs: 300_000,
        },
      );
      for await (const r of stream) {
        const ev = r.event?.event;
        if (ev?.case === 'data') {
          const o = ev.value.output;
          if (o.case === 'stdout') stdout += Buffer.from(o.value).toString();
          else if (o.case === 'stderr') stderr += Buffer.from(o.value).toString();
        } else if (ev?.case === 'end') {
          exitCode = ev.value.exitCode;
        }
      }
      return { stdout, stderr, exitCode };
    },
    /**
     * Start a process and return its pid once envd reports it started; the client stream is
     * then dropped — envd keeps the process running (processes outlive their client).
     */
    async startBackground(cmd: string, args: string[] = [], user = 'root'): Promise<number> {
      const ctl = new AbortController();
      const stream = proc.start(
        { process: { cmd, args, envs: {} } },
        {
          headers: {
            ...headers,
            authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}`,
          },
          signal: ctl.signal,
        },
      );
      try {
        for await (const r of stream) {
          const ev = r.event?.event;
          if (ev?.case === 'start') return ev.value.pid;
          if (ev?.case === 'end')
            throw new Error(`${cmd} ended at once: ${JSON.stringify(ev.value)}`);
        }
      } finally {
        ctl.abort();
      }
      throw new Error(`${cmd}: stream ended without a start event`);
    },
    async writeFile(path: string, data: Uint8Array | string, user = 'root'): Promise<void> {
      const res = await fetch(`${base}/files?path=${encodeURIComponent(path)}&username=${user}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        body: typeof data === 'string' ? data : Buffer.from(data),
      });
      if (res.status >= 300)
        throw new Error(`POST /files ${path}: ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    },
    async readFile(path: string, user = 'root'): Promise<Buffer> {
      const res = await fetch(`${base}/files?path=${encodeURIComponent(path)}&username=${user}`, {
        headers,
      });
      if (res.status !== 200)
        throw new Error(`GET /files ${path}: ${res.status} ${await res.text()}`);
      return Buffer.from(await res.arrayBuffer());
    },
  };
}

/** PIDs of processes whose command line names a path under `dir` (VMs of that WRENN_DIR). */
export async function processesUnder(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const n of await readdir('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    const cmd = await readFile(`/proc/${n}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(`${dir}/sandboxes/`) || cmd.includes(`${dir}/tmp/`)) {
      const stat = await readFile(`/proc/${n}/stat`, 'utf8').catch(() => '');
      if (!/^\d+ \(.*\) Z/.test(stat)) out.push(Number(n));
    }
  }
  return out;
}

/** Kill (SIGKILL, by pid) every VM process of a test WRENN_DIR — the test's own cleanup. */
export async function killVmsUnder(dir: string): Promise<void> {
  for (const pid of await processesUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}
