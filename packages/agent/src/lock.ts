/**
 * A per-sandbox lifecycle lock: lifecycle verbs on one sandbox run one at a time, in
 * arrival order. Verbs on different sandboxes run in parallel.
 */
export class Lock {
  private tail: Promise<void> = Promise.resolve();
  private held = 0;

  get busy(): boolean {
    return this.held > 0;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => {
      release = r;
    });
    this.held++;
    try {
      await prev;
      return await fn();
    } finally {
      this.held--;
      release();
    }
  }
}
