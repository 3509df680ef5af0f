/**
 * In-flight proxied requests of one sandbox. Pause closes the gate (new requests are
 * refused by the proxy because the status is no longer running), then drains: waits for
 * in-flight requests to finish, and aborts the ones still open at the deadline (long
 * streams such as a process's output would otherwise block a pause forever).
 */
export class ConnTracker {
  private readonly open = new Map<number, () => void>();
  private next = 0;
  private waiters: (() => void)[] = [];

  get inFlight(): number {
    return this.open.size;
  }

  /** Register a request; returns `done`, to call once when it ends. */
  begin(abort: () => void): () => void {
    const id = this.next++;
    this.open.set(id, abort);
    return () => {
      if (!this.open.delete(id)) return;
      if (this.open.size === 0) {
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      }
    };
  }

  /** Resolves with the number of requests aborted at the deadline. */
  async drain(deadlineMs: number): Promise<number> {
    if (this.open.size === 0) return 0;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      new Promise<boolean>((r) => this.waiters.push(() => r(true))),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    if (drained) return 0;
    const aborts = [...this.open.values()];
    this.open.clear();
    for (const a of aborts) a();
    return aborts.length;
  }
}
