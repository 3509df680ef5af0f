import { create } from '@bufbuild/protobuf';
import { ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { WrennError } from '@wrenn/common';
import { processv1 } from '@wrenn/proto';

/**
 * Talks to envd inside a sandbox through the owning agent's proxy — the same path the
 * gateway forwards to — using E2B's envd protocol (Connect `process.Process`, HTTP `/files`).
 */
export interface EnvdTarget {
  /** `<agentUrl>/proxy/<sandboxId>/<envdPort>` */
  baseUrl: string;
  /** Host token for the agent, access token for envd. */
  headers: Record<string, string>;
}

export interface ExecInput {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs: number;
  /** Stop collecting output beyond this many bytes per stream (the process still runs to its end). */
  maxOutputBytes: number;
}

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  truncated: boolean;
  /** Set when the process ended without an exit code (killed by a signal, or envd reported an error). */
  error?: string;
}

/** E2B's envd takes the user as HTTP Basic with an empty password; none = envd's default user. */
export function userHeader(user: string | undefined): Record<string, string> {
  return user ? { authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` } : {};
}

function filesUrl(target: EnvdTarget, path: string, user: string | undefined): string {
  return `${target.baseUrl}/files?${new URLSearchParams(user ? { path, username: user } : { path })}`;
}

export async function execCommand(target: EnvdTarget, input: ExecInput): Promise<ExecResult> {
  const transport = createConnectTransport({ baseUrl: target.baseUrl, httpVersion: '1.1' });
  const client = createClient(processv1.Process, transport);
  const headers = { ...target.headers, ...userHeader(input.user) };
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let outBytes = 0;
  let errBytes = 0;
  let truncated = false;
  const keep = (chunks: Buffer[], have: number, data: Uint8Array): number => {
    const room = input.maxOutputBytes - have;
    if (room <= 0) {
      truncated = true;
      return have;
    }
    const slice = data.byteLength > room ? data.subarray(0, room) : data;
    if (slice.byteLength < data.byteLength) truncated = true;
    chunks.push(Buffer.from(slice));
    return have + slice.byteLength;
  };

  const req = create(processv1.StartRequestSchema, {
    process: {
      cmd: input.argv[0]!,
      args: input.argv.slice(1),
      envs: input.env ?? {},
      cwd: input.cwd,
    },
  });
  let exitCode: number | undefined;
  let error: string | undefined;
  let pid = 0;
  try {
    for await (const res of client.start(req, { headers, timeoutMs: input.timeoutMs })) {
      const ev = res.event?.event;
      if (!ev) continue;
      if (ev.case === 'start') pid = ev.value.pid;
      else if (ev.case === 'data') {
        if (ev.value.output.case === 'stdout')
          outBytes = keep(out, outBytes, ev.value.output.value);
        else if (ev.value.output.case === 'stderr')
          errBytes = keep(err, errBytes, ev.value.output.value);
      } else if (ev.case === 'end') {
        exitCode = ev.value.exitCode;
        // A non-zero exit is a result, not an error; only a signal or an envd failure is.
        if (!ev.value.exited) error = ev.value.error || ev.value.status;
      }
    }
  } catch (e) {
    const ce = ConnectError.from(e);
    if (ce.code === 4 /* DeadlineExceeded */) {
      // envd keeps a process whose stream went away (E2B clients reconnect to it); a
      // one-shot exec that timed out must not leave it running.
      if (pid) {
        const process = { selector: { case: 'pid' as const, value: pid } };
        await client
          .sendSignal({ process, signal: processv1.Signal.SIGKILL }, { headers, timeoutMs: 10_000 })
          .catch(() => undefined);
      }
      throw new WrennError(
        'deadline_exceeded',
        `command did not finish within ${input.timeoutMs} ms (killed)`,
      );
    }
    if (ce.code === 3 /* InvalidArgument */ || ce.code === 5 /* NotFound */) {
      throw new WrennError('invalid_argument', `envd rejected the command: ${ce.rawMessage}`);
    }
    throw new WrennError('bad_gateway', `envd did not run the command: ${ce.rawMessage}`, {
      cause: e,
    });
  }
  if (exitCode === undefined)
    throw new WrennError('bad_gateway', 'envd closed the stream without an exit code');
  return {
    stdout: Buffer.concat(out),
    stderr: Buffer.concat(err),
    exitCode,
    truncated,
    ...(error ? { error } : {}),
  };
}

async function envdHttpError(res: Response, what: string): Promise<WrennError> {
  const text = await res.text().catch(() => '');
  let message = text.slice(0, 500);
  try {
    const j = JSON.parse(text) as { message?: string };
    if (j.message) message = j.message;
  } catch {
    // envd answered with plain text; keep it as the message.
  }
  const code =
    res.status === 404
      ? 'not_found'
      : res.status === 400
        ? 'invalid_argument'
        : res.status === 507
          ? 'resource_exhausted'
          : 'bad_gateway';
  return new WrennError(code, `${what}: ${message || `envd answered ${res.status}`}`);
}

export async function readFile(target: EnvdTarget, path: string, user?: string): Promise<Response> {
  const url = filesUrl(target, path, user);
  const res = await fetch(url, { headers: { ...target.headers, ...userHeader(user) } });
  if (!res.ok) throw await envdHttpError(res, `read ${path}`);
  return res;
}

export async function writeFile(
  target: EnvdTarget,
  path: string,
  data: Uint8Array,
  user?: string,
): Promise<void> {
  const url = filesUrl(target, path, user);
  const form = new FormData();
  form.append('file', new Blob([data]), path.split('/').pop() || 'file');
  const res = await fetch(url, {
    method: 'POST',
    body: form,
    headers: { ...target.headers, ...userHeader(user) },
  });
  if (!res.ok) throw await envdHttpError(res, `write ${path}`);
  await res.arrayBuffer();
}
