import type { Logger } from '@wrenn/common';
import { errorMessage } from '@wrenn/common';

/**
 * A cleanup stack for create and resume: every acquired resource pushes its undo right
 * after it is acquired; on failure the stack unwinds in reverse. `disarm()` once the work
 * succeeded keeps everything. An undo that fails is logged and the unwind goes on: one
 * leaked resource must not leak the rest.
 */
export class CleanupStack {
  private readonly undos: { name: string; fn: () => Promise<void> | void }[] = [];
  constructor(private readonly log: Logger) {}

  push(name: string, fn: () => Promise<void> | void): void {
    this.undos.push({ name, fn });
  }

  disarm(): void {
    this.undos.length = 0;
  }

  async unwind(): Promise<void> {
    while (this.undos.length > 0) {
      const { name, fn } = this.undos.pop()!;
      try {
        await fn();
      } catch (e) {
        this.log.warn(
          { event: 'cleanup-failed', undo: name, error: errorMessage(e) },
          'cleanup step failed',
        );
      }
    }
  }
}
