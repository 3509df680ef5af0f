import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { WrennError } from '@wrenn/common/errors.ts';
import type { IPty } from 'node-pty';
import type { User } from '../users.ts';
import {
  type EndEvent,
  type OutputEvent,
  OutputRing,
  type ProcEvent,
  Subscriber,
} from './output.ts';

export interface ProcessSpec {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd: string;
  /** Whether stdin is a pipe the client can write to (else /dev/null). */
  stdin: boolean;
  pty?: { cols: number; rows: number };
  tag?: string;
  /** What the client asked for, echoed by List. */
  requested: { cmd: string; args: string[]; envs: Record<string, string>; cwd?: string };
}

/** Pause a source while any subscriber holds more than this; resume below LOW_WATER. */
const HIGH_WATER = 4 << 20;
const LOW_WATER = 1 << 20;

const SIGNAL_WORDS: Record<string, string> = {
  SIGKILL: 'killed',
  SIGTERM: 'terminated',
  SIGINT: 'interrupt',
  SIGHUP: 'hangup',
  SIGPIPE: 'broken pipe',
  SIGSEGV: 'segmentation fault',
  SIGABRT: 'aborted',
};

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

let ptyModule: Promise<typeof import('node-pty')> | undefined;
/** node-pty loads lazily: a native addon costs startup time most sandboxes never need. */
function loadPty(): Promise<typeof import('node-pty')> {
  ptyModule ??= import('node-pty').then(
    (m) => (m as { default?: typeof import('node-pty') }).default ?? m,
  );
  return ptyModule;
}

/**
 * A process envd started. It outlives the client that started it; its output goes to every
 * subscriber and to a bounded ring a later Connect replays.
 */
export class ManagedProcess {
  readonly subscribers = new Set<Subscriber>();
  readonly ring: OutputRing;
  end: EndEvent | undefined;
  endedAt = 0;
  private child: ChildProcess | undefined;
  private term: IPty | undefined;
  private paused = false;

  private constructor(
    readonly pid: number,
    readonly spec: ProcessSpec,
    bufferBytes: number,
  ) {
    this.ring = new OutputRing(bufferBytes);
  }

  get tag(): string | undefined {
    return this.spec.tag;
  }

  get isPty(): boolean {
    return this.term !== undefined;
  }

  /** Spawn as `user`; resolves once the kernel has a pid (rejects if exec failed). */
  static async start(spec: ProcessSpec, user: User, bufferBytes: number): Promise<ManagedProcess> {
    return spec.pty ? startPty(spec, user, bufferBytes) : startPiped(spec, user, bufferBytes);
  }

  /** Subscribe; the subscriber first receives the retained output (and the end, if any). */
  subscribe(): Subscriber {
    const sub = new Subscriber(
      () => this.maybeResume(),
      (s) => {
        this.subscribers.delete(s);
        this.maybeResume();
      },
    );
    for (const ev of this.ring.snapshot()) sub.push(ev);
    if (this.end) sub.push(this.end);
    else this.subscribers.add(sub);
    return sub;
  }

  writeInput(data: Uint8Array): void {
    if (this.end) throw new WrennError('not_found', `process ${this.pid} has exited`);
    if (this.term) {
      this.term.write(Buffer.from(data));
      return;
    }
    const stdin = this.child?.stdin;
    if (!stdin)
      throw new WrennError('failed_precondition', `process ${this.pid} was started without stdin`);
    if (stdin.destroyed || stdin.writableEnded)
      throw new WrennError('failed_precondition', `stdin of process ${this.pid} is closed`);
    stdin.write(data);
  }

  closeStdin(): void {
    if (this.end) throw new WrennError('not_found', `process ${this.pid} has exited`);
    if (this.term) {
      this.term.write('\x04'); // EOF on a terminal is ^D at the start of a line
      return;
    }
    const stdin = this.child?.stdin;
    if (!stdin)
      throw new WrennError('failed_precondition', `process ${this.pid} was started without stdin`);
    stdin.end();
  }

  signal(sig: NodeJS.Signals): void {
    if (this.end) throw new WrennError('not_found', `process ${this.pid} has exited`);
    // The process leads its own group: signal the group so `bash -c` children die too.
    try {
      process.kill(-this.pid, sig);
    } catch {
      try {
        process.kill(this.pid, sig);
      } catch (e) {
        throw new WrennError('not_found', `process ${this.pid}: ${(e as Error).message}`);
      }
    }
  }

  resize(cols: number, rows: number): void {
    if (!this.term)
      throw new WrennError('failed_precondition', `process ${this.pid} has no PTY to resize`);
    if (this.end) throw new WrennError('not_found', `process ${this.pid} has exited`);
    if (cols < 1 || rows < 1)
      throw new WrennError('invalid_argument', 'PTY size must be at least 1x1');
    this.term.resize(cols, rows);
  }

  private emit(ev: OutputEvent): void {
    this.ring.push(ev);
    for (const s of this.subscribers) {
      s.push(ev);
      if (s.queuedBytes > HIGH_WATER) this.pause();
    }
  }

  private finish(ev: EndEvent): void {
    if (this.end) return;
    this.end = ev;
    this.endedAt = Date.now();
    for (const s of this.subscribers) s.push(ev);
    this.subscribers.clear();
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.child?.stdout?.pause();
    this.child?.stderr?.pause();
    this.term?.pause();
  }

  private maybeResume(): void {
    if (!this.paused) return;
    for (const s of this.subscribers) if (s.queuedBytes > LOW_WATER) return;
    this.paused = false;
    this.child?.stdout?.resume();
    this.child?.stderr?.resume();
    this.term?.resume();
  }

  /** Wire a started child; the static constructors below are the only callers. */
  static attachPiped(child: ChildProcess, spec: ProcessSpec, bufferBytes: number): ManagedProcess {
    const p = new ManagedProcess(child.pid!, spec, bufferBytes);
    p.child = child;
    child.stdout!.on('data', (d: Buffer) => p.emit({ kind: 'stdout', data: d }));
    child.stderr!.on('data', (d: Buffer) => p.emit({ kind: 'stderr', data: d }));
    child.stdin?.on('error', () => {}); // EPIPE when the process exits before reading: not envd's failure
    // 'close' (not 'exit') so every byte of output precedes the end event.
    child.on('close', (code, signal) => p.finish(endEvent(code, signal)));
    return p;
  }

  static attachPty(term: IPty, spec: ProcessSpec, bufferBytes: number): ManagedProcess {
    const p = new ManagedProcess(term.pid, spec, bufferBytes);
    p.term = term;
    term.onData((d: string | Buffer) =>
      p.emit({ kind: 'pty', data: typeof d === 'string' ? Buffer.from(d) : d }),
    );
    term.onExit(({ exitCode, signal }) => {
      const sigName = signal
        ? (Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? null)
        : null;
      // node-pty reports exitCode 0 with a signal for killed processes.
      p.finish(endEvent(sigName ? null : exitCode, sigName as NodeJS.Signals | null));
    });
    return p;
  }
}

function endEvent(code: number | null, signal: NodeJS.Signals | null): EndEvent {
  if (signal) {
    const status = `signal: ${SIGNAL_WORDS[signal] ?? signal}`;
    return { kind: 'end', exitCode: -1, exited: false, status, error: status };
  }
  const exitCode = code ?? -1;
  const status = `exit status ${exitCode}`;
  return {
    kind: 'end',
    exitCode,
    exited: true,
    status,
    error: exitCode === 0 ? undefined : status,
  };
}

/** Whether uid/gid must change for this user (not when envd already runs as them). */
function needsCredentials(user: User): boolean {
  return process.getuid?.() !== user.uid || process.getgid?.() !== user.gid;
}

async function startPiped(
  spec: ProcessSpec,
  user: User,
  bufferBytes: number,
): Promise<ManagedProcess> {
  let file = spec.cmd;
  let args = spec.args;
  const creds: { uid?: number; gid?: number } = {};
  if (needsCredentials(user)) {
    // libuv drops supplementary groups when it sets uid/gid; setpriv (when the image has
    // it) keeps them and execs in place, so the pid is still the command's.
    const extra = user.groups.filter((g) => g !== user.gid);
    if (SETPRIV && extra.length > 0) {
      args = [
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        `--groups=${user.groups.join(',')}`,
        '--',
        file,
        ...args,
      ];
      file = SETPRIV;
    } else {
      creds.uid = user.uid;
      creds.gid = user.gid;
    }
  }
  const child = spawn(file, args, {
    cwd: spec.cwd,
    env: spec.envs,
    stdio: [spec.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: true, // own process group: signals reach the whole command
    ...creds,
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(e));
  });
  return ManagedProcess.attachPiped(child, spec, bufferBytes);
}

async function startPty(
  spec: ProcessSpec,
  user: User,
  bufferBytes: number,
): Promise<ManagedProcess> {
  const pty = await loadPty();
  const creds = needsCredentials(user) ? { uid: user.uid, gid: user.gid } : {};
  // node-pty forks synchronously and sets only uid/gid: give envd the user's groups for the
  // instant of the fork so the child inherits them, then restore envd's own.
  const saved = creds.uid !== undefined && process.getgroups ? process.getgroups() : undefined;
  if (saved) process.setgroups!(user.groups);
  let term: IPty;
  try {
    term = pty.spawn(spec.cmd, spec.args, {
      name: spec.envs.TERM ?? 'xterm-256color',
      cols: spec.pty!.cols,
      rows: spec.pty!.rows,
      cwd: spec.cwd,
      env: spec.envs,
      encoding: null,
      ...creds,
    } as Parameters<typeof pty.spawn>[2]);
  } finally {
    if (saved) process.setgroups!(saved);
  }
  return ManagedProcess.attachPty(term, spec, bufferBytes);
}

export type { ProcEvent };
