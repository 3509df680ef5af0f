/** One thing a process stream carries, in the order it happened. */
export type OutputEvent = { kind: 'stdout' | 'stderr' | 'pty'; data: Uint8Array };
export type EndEvent = {
  kind: 'end';
  exitCode: number;
  exited: boolean;
  status: string;
  error?: string;
};
const isOutput = (ev: ProcEvent): ev is OutputEvent =>
  ev.kind === 'stdout' || ev.kind === 'stderr' || ev.kind === 'pty';

/** Largest data event a subscriber builds by merging queued chunks. */
const COALESCE_BYTES = 1 << 20;

export type KeepAliveEvent = { kind: 'keepalive' };
export type ProcEvent = OutputEvent | EndEvent | KeepAliveEvent;

/**
 * The most recent output of a process, at most `limit` bytes (whole chunks; the oldest are
 * dropped first). A later Connect replays it, so output produced while no client listens
 * is kept up to this bound.
 * INVARIANT: bytes === sum of chunk lengths <= limit + (length of the newest chunk).
 */
export class OutputRing {
  private chunks: OutputEvent[] = [];
  private head = 0;
  bytes = 0;
  /** Bytes dropped from the front so far; a reader can tell it missed output. */
  dropped = 0;

  constructor(private readonly limit: number) {}

  push(ev: OutputEvent): void {
    this.chunks.push(ev);
    this.bytes += ev.data.length;
    while (
      this.bytes - this.chunks[this.head]!.data.length >= this.limit &&
      this.head < this.chunks.length - 1
    ) {
      const old = this.chunks[this.head++]!;
      this.bytes -= old.data.length;
      this.dropped += old.data.length;
    }
    // Compact once the dead prefix dominates, so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  snapshot(): OutputEvent[] {
    return this.chunks.slice(this.head);
  }
}

/**
 * A client's view of a process: a queue it drains at its own pace. The process pauses its
 * output pipes while any subscriber holds more than `highWater` bytes, so a slow client slows
 * the process (like a full pipe) instead of growing envd's memory.
 */
export class Subscriber {
  private queue: ProcEvent[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  queuedBytes = 0;

  constructor(
    private readonly onDrain: () => void,
    private readonly onClose: (s: Subscriber) => void,
  ) {}

  push(ev: ProcEvent): void {
    if (this.closed) return;
    this.queue.push(ev);
    if (ev.kind === 'stdout' || ev.kind === 'stderr' || ev.kind === 'pty')
      this.queuedBytes += ev.data.length;
    this.wake?.();
  }

  /** Events until the end event (inclusive) or until the consumer stops. */
  async *events(signal?: AbortSignal): AsyncGenerator<ProcEvent> {
    const onAbort = () => this.wake?.();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        while (this.queue.length === 0) {
          if (signal?.aborted) return;
          await new Promise<void>((r) => {
            this.wake = r;
          });
          this.wake = undefined;
        }
        // One event-loop turn lets pending pipe reads land so they ship as one message;
        // costs microseconds of latency, saves most per-message work on bulk output.
        if (this.queue.length === 1 && isOutput(this.queue[0]!))
          await new Promise((r) => setImmediate(r));
        if (this.queue.length === 0) continue;
        const ev = this.coalesce(this.queue.shift()!);
        if (ev.kind === 'stdout' || ev.kind === 'stderr' || ev.kind === 'pty') {
          this.queuedBytes -= ev.data.length;
          this.onDrain();
        }
        yield ev;
        if (ev.kind === 'end') return;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.close();
    }
  }

  /**
   * Merge queued chunks of the same stream into one event of at most COALESCE_BYTES: a
   * pipe yields 64 KiB reads, and per-message costs (framing, write, drain) dominate a
   * fast producer like `cat`. Order across stdout/stderr is kept (only neighbours merge).
   */
  private coalesce(first: ProcEvent): ProcEvent {
    if (first.kind !== 'stdout' && first.kind !== 'stderr' && first.kind !== 'pty') return first;
    let size = first.data.length;
    let n = 0;
    while (n < this.queue.length) {
      const next = this.queue[n]!;
      if (next.kind !== first.kind || size + next.data.length > COALESCE_BYTES) break;
      size += next.data.length;
      n++;
    }
    if (n === 0) return first;
    const parts = [first.data, ...this.queue.splice(0, n).map((e) => (e as OutputEvent).data)];
    return { kind: first.kind, data: Buffer.concat(parts, size) };
  }

  /** Keepalive only when idle: a busy stream already proves the connection is alive. */
  keepalive(): void {
    if (this.queue.length === 0) this.push({ kind: 'keepalive' });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.onClose(this);
  }
}
