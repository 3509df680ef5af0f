import { existsSync, statSync } from 'node:fs';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { WrennError } from '@wrenn/common/errors.ts';
import { processv1 } from '@wrenn/proto';
import { checkAccess, resolvePath } from '../paths.ts';
import { keepaliveMs, rpcUser, streaming, unary } from '../rpc-context.ts';
import type { EnvdState } from '../state.ts';
import type { User } from '../users.ts';
import { ManagedProcess, type ProcessSpec } from './managed.ts';
import type { ProcEvent } from './output.ts';
import type { ProcessRegistry } from './registry.ts';

const { Process, Signal } = processv1;
type ProcessEventInit = MessageInitShape<typeof processv1.ProcessEventSchema>;

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** process.Process: start, attach to, feed and signal processes. */
export function processService(
  state: EnvdState,
  registry: ProcessRegistry,
): ServiceImpl<typeof Process> {
  return {
    list: (_req, _ctx) =>
      unary(async () => ({
        processes: registry
          .running()
          .map((p) => ({ pid: p.pid, tag: p.tag, config: p.spec.requested })),
      })),

    start: (req, ctx) =>
      streaming(async function* () {
        const user = await rpcUser(state, ctx);
        const spec = await specFor(state, user, req);
        let proc: ManagedProcess;
        try {
          proc = await ManagedProcess.start(spec, user, state.opts.outputBufferBytes);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT')
            throw new WrennError(
              'not_found',
              `cannot start '${spec.cmd}': no such file or directory`,
            );
          if (code === 'EACCES')
            throw new WrennError(
              'permission_denied',
              `cannot start '${spec.cmd}': permission denied`,
            );
          throw e;
        }
        registry.add(proc);
        yield* followProcess(proc, ctx);
      }),

    connect: (req, ctx) =>
      streaming(async function* () {
        const proc = registry.find(req.process?.selector);
        yield* followProcess(proc, ctx);
      }),

    update: (req) =>
      unary(async () => {
        const proc = registry.find(req.process?.selector, { running: true });
        const size = req.pty?.size;
        if (size) proc.resize(size.cols, size.rows);
        return {};
      }),

    sendInput: (req) =>
      unary(async () => {
        const proc = registry.find(req.process?.selector, { running: true });
        const input = req.input?.input;
        if (input?.case) proc.writeInput(input.value);
        return {};
      }),

    streamInput: (reqs) =>
      unary(async () => {
        let proc: ManagedProcess | undefined;
        for await (const msg of reqs) {
          const ev = msg.event;
          if (ev.case === 'start')
            proc = registry.find(ev.value.process?.selector, { running: true });
          else if (ev.case === 'data') {
            if (!proc)
              throw new WrennError('invalid_argument', 'StreamInput must begin with a start event');
            const input = ev.value.input?.input;
            if (input?.case) proc.writeInput(input.value);
          }
        }
        return {};
      }),

    sendSignal: (req) =>
      unary(async () => {
        const proc = registry.find(req.process?.selector, { running: true });
        if (req.signal === Signal.SIGKILL) proc.signal('SIGKILL');
        else if (req.signal === Signal.SIGTERM) proc.signal('SIGTERM');
        else throw new WrennError('invalid_argument', `unsupported signal ${req.signal}`);
        return {};
      }),

    closeStdin: (req) =>
      unary(async () => {
        registry.find(req.process?.selector, { running: true }).closeStdin();
        return {};
      }),
  };
}

async function specFor(
  state: EnvdState,
  user: User,
  req: processv1.StartRequest,
): Promise<ProcessSpec> {
  const cfg = req.process;
  if (!cfg?.cmd) throw new WrennError('invalid_argument', 'process.cmd is required');
  const cwd = cfg.cwd ? resolvePath(user, cfg.cwd) : (state.defaultWorkdir ?? user.home);
  // Synchronous on purpose: spawn blocks envd until the child's chdir and exec anyway, so a
  // cwd that hangs (a stuck mount) would hang the spawn too; async stat cost a thread-pool
  // round trip per command.
  let isDir = false;
  try {
    isDir = statSync(cwd, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {} // ENOTDIR, ELOOP, …: not a usable cwd either
  if (!isDir)
    throw new WrennError('invalid_argument', `cwd '${cwd}' does not exist or is not a directory`);
  await checkAccess(user, cwd, ['x']);
  // The SDK always runs `/bin/bash -l -c <cmd>`; busybox-only images have no bash, and
  // their sh understands the same flags.
  const cmd = cfg.cmd === '/bin/bash' && !existsSync('/bin/bash') ? '/bin/sh' : cfg.cmd;
  const envs: Record<string, string> = {
    PATH: DEFAULT_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
    PWD: cwd,
    ...Object.fromEntries(state.envVars),
    ...cfg.envs,
  };
  const size = req.pty?.size;
  return {
    cmd,
    args: cfg.args,
    envs,
    cwd,
    stdin: req.stdin ?? true,
    pty: req.pty ? { cols: size?.cols || 80, rows: size?.rows || 24 } : undefined,
    tag: req.tag,
    requested: { cmd: cfg.cmd, args: cfg.args, envs: cfg.envs, cwd: cfg.cwd },
  };
}

/** start event, then output (retained first, then live), keepalives while idle, then end. */
async function* followProcess(
  proc: ManagedProcess,
  ctx: HandlerContext,
): AsyncGenerator<{ event: ProcessEventInit }> {
  const sub = proc.subscribe();
  const timer = setInterval(() => sub.keepalive(), keepaliveMs(ctx));
  try {
    yield { event: { event: { case: 'start', value: { pid: proc.pid } } } };
    for await (const ev of sub.events(ctx.signal)) yield { event: toProto(ev) };
  } finally {
    clearInterval(timer);
    sub.close();
  }
}

function toProto(ev: ProcEvent): ProcessEventInit {
  switch (ev.kind) {
    case 'keepalive':
      return { event: { case: 'keepalive', value: {} } };
    case 'end':
      return {
        event: {
          case: 'end',
          value: { exitCode: ev.exitCode, exited: ev.exited, status: ev.status, error: ev.error },
        },
      };
    default:
      return { event: { case: 'data', value: { output: { case: ev.kind, value: ev.data } } } };
  }
}
