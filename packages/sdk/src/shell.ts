import { create } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { processv1 } from '@wrenn/proto';
import type { Sandbox } from './types.ts';

export interface ShellOptions {
  /** Gateway base URL (E2B_SANDBOX_URL; the API URL with the built-in gateway). */
  sandboxUrl: string;
  cols: number;
  rows: number;
  cmd?: string;
  args?: string[];
  user?: string;
  env?: Record<string, string>;
  onData(data: Uint8Array): void;
}

export interface ShellSession {
  pid: number;
  write(data: Uint8Array | string): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  kill(): Promise<void>;
  /** Resolves with the exit code when the shell ends. */
  exited: Promise<number>;
}

/**
 * An interactive PTY in a sandbox, spoken directly to envd through the gateway with E2B's
 * envd protocol (process.Process Start with a PTY, SendInput, Update for resize).
 */
export async function openShell(
  sandbox: Pick<Sandbox, 'sandboxId' | 'envdAccessToken'>,
  opts: ShellOptions,
): Promise<ShellSession> {
  const transport = createConnectTransport({ baseUrl: opts.sandboxUrl, useBinaryFormat: true });
  const client: Client<typeof processv1.Process> = createClient(processv1.Process, transport);
  const headers: Record<string, string> = {
    'E2b-Sandbox-Id': sandbox.sandboxId,
    'E2b-Sandbox-Port': '49983',
    'X-Access-Token': sandbox.envdAccessToken,
  };
  if (opts.user) headers.authorization = `Basic ${Buffer.from(`${opts.user}:`).toString('base64')}`;
  const abort = new AbortController();
  const stream = client
    .start(
      create(processv1.StartRequestSchema, {
        process: {
          cmd: opts.cmd ?? '/bin/bash',
          args: opts.args ?? ['-i', '-l'],
          envs: { TERM: 'xterm-256color', ...opts.env },
        },
        pty: { size: { cols: opts.cols, rows: opts.rows } },
      }),
      { headers, signal: abort.signal },
    )
    [Symbol.asyncIterator]();

  let pid = 0;
  while (!pid) {
    const n = await stream.next();
    if (n.done) throw new Error('the shell ended before it started');
    const ev = n.value.event?.event;
    if (ev?.case === 'start') pid = ev.value.pid;
  }
  const selector = { selector: { case: 'pid' as const, value: pid } };
  const exited = (async () => {
    let code = -1;
    for (;;) {
      const n = await stream.next();
      if (n.done) return code;
      const ev = n.value.event?.event;
      if (ev?.case === 'data' && ev.value.output.case === 'pty') opts.onData(ev.value.output.value);
      else if (ev?.case === 'end') code = ev.value.exitCode;
    }
  })();
  return {
    pid,
    exited,
    async write(data) {
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
      await client.sendInput(
        { process: selector, input: { input: { case: 'pty', value: bytes } } },
        { headers },
      );
    },
    async resize(cols, rows) {
      await client.update({ process: selector, pty: { size: { cols, rows } } }, { headers });
    },
    async kill() {
      await client
        .sendSignal({ process: selector, signal: processv1.Signal.SIGKILL }, { headers })
        .catch(() => {});
      abort.abort();
    },
  };
}
