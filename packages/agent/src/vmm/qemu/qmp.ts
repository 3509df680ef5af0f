import { connect, type Socket } from 'node:net';
import { WrennError } from '@wrenn/common';

/**
 * A QMP client (QEMU's JSON monitor protocol on a unix socket): greeting, capabilities
 * negotiation, commands with timeouts, events. QMP answers commands in order and tags each
 * answer with the `id` we sent, so any number of commands can be in flight.
 *
 * INVARIANT: every pending command settles — with its answer, its timeout, or the socket
 * closing (a VM that dies mid-command rejects with `unavailable`, never hangs).
 */

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface EventWaiter {
  match: (e: QmpEvent) => boolean;
  resolve: (e: QmpEvent) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface QmpConnectOptions {
  /** Overall budget for connecting (retrying while the socket does not exist yet) and negotiating. */
  timeoutMs?: number;
  /** Default timeout of each command. */
  commandTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
// Unix socket paths longer than this do not fit in sockaddr_un.sun_path.
export const MAX_SOCKET_PATH = 107;

export class QmpClient {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly waiters = new Set<EventWaiter>();
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private closedError: WrennError | undefined;
  private readonly closedPromise: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
    private readonly commandTimeoutMs: number,
  ) {
    let markClosed!: () => void;
    this.closedPromise = new Promise((r) => {
      markClosed = r;
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => {}); // 'close' follows and carries the consequence
    socket.on('close', () => {
      this.fail(
        new WrennError(
          'unavailable',
          `QMP connection ${path} closed (the VM exited or another client took over)`,
        ),
      );
      markClosed();
    });
  }

  /**
   * Connect and negotiate capabilities. Retries while the socket is missing or refuses
   * (QEMU still starting) until the timeout.
   */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    if (path.length > MAX_SOCKET_PATH) {
      throw new WrennError(
        'invalid_argument',
        `QMP socket path is longer than ${MAX_SOCKET_PATH} bytes: ${path}`,
      );
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      let socket: Socket;
      try {
        socket = await openSocket(path, deadline - Date.now());
      } catch (e) {
        lastError = e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') break;
        await sleep(20);
        continue;
      }
      const client = new QmpClient(
        socket,
        path,
        opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      );
      try {
        await client.handshake(Math.max(1, deadline - Date.now()));
        return client;
      } catch (e) {
        client.destroy();
        throw e;
      }
    }
    throw new WrennError(
      'unavailable',
      `cannot connect to QMP at ${path} within ${timeoutMs} ms: ${describe(lastError)}`,
      {
        cause: lastError,
      },
    );
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Resolves when the connection is gone, whatever the reason. */
  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  /** Run a QMP command; its `return` value, or a WrennError carrying QEMU's error text. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = this.commandTimeoutMs,
  ): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `w${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new WrennError(
            'deadline_exceeded',
            `QMP command ${command} got no answer within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(
        `${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`,
      );
    });
  }

  /** An HMP command through QMP; HMP reports failures as text, which becomes an error here. */
  async hmp(commandLine: string, timeoutMs?: number): Promise<string> {
    const out = await this.execute<string>(
      'human-monitor-command',
      { 'command-line': commandLine },
      timeoutMs,
    );
    return out;
  }

  /**
   * Wait for the next event matching `name` and `match`. Register the wait *before* issuing
   * the command that causes the event, or the event can be missed.
   */
  waitEvent(
    name: string,
    match: (e: QmpEvent) => boolean = () => true,
    timeoutMs = this.commandTimeoutMs,
  ): Promise<QmpEvent> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const waiter: EventWaiter = {
        match: (e) => e.event === name && match(e),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(
            new WrennError(
              'deadline_exceeded',
              `QMP event ${name} did not arrive within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Close the connection (the VM keeps running) and wait until it is gone. */
  async close(): Promise<void> {
    if (!this.socket.destroyed) this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 1000);
    await this.closedPromise;
    clearTimeout(timer);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private async handshake(timeoutMs: number): Promise<void> {
    // The greeting is the first line QEMU writes; it is not an answer to anything.
    const greeting = new Promise<void>((resolve, reject) => {
      if (this.greeted) return resolve();
      const timer = setTimeout(
        () =>
          reject(
            new WrennError(
              'deadline_exceeded',
              `no QMP greeting on ${this.path} within ${timeoutMs} ms (another client connected?)`,
            ),
          ),
        timeoutMs,
      );
      this.greetingWaiter = (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
    });
    await greeting;
    await this.execute('qmp_capabilities', undefined, timeoutMs);
  }

  private greetingWaiter: ((err?: Error) => void) | undefined;
  private greeted = false;

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl = this.buf.indexOf('\n');
    while (nl >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(line);
      nl = this.buf.indexOf('\n');
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not JSON: nothing in QMP's grammar, ignore rather than kill the session
    }
    if ('QMP' in msg) {
      this.greeted = true;
      const w = this.greetingWaiter;
      this.greetingWaiter = undefined;
      w?.();
      return;
    }
    if (typeof msg.event === 'string') {
      const ev = msg as unknown as QmpEvent;
      for (const w of [...this.waiters]) {
        if (w.match(ev)) {
          this.waiters.delete(w);
          clearTimeout(w.timer);
          w.resolve(ev);
        }
      }
      for (const l of this.listeners) l(ev);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p || !id) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(
        new WrennError(
          'internal',
          `QMP ${p.command} failed: ${err.desc ?? err.class ?? 'unknown error'}`,
        ),
      );
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(err: WrennError): void {
    if (this.closedError) return;
    this.closedError = err;
    this.greetingWaiter?.(err);
    this.greetingWaiter = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(
        new WrennError('unavailable', `QMP command ${p.command} interrupted: ${err.message}`),
      );
      this.pending.delete(id);
    }
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }
}

function openSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        Object.assign(new Error(`connect timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e ?? 'no attempt'));
