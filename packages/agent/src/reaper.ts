import { errorMessage } from '@wrenn/common';
import { destroySandbox } from './lifecycle/destroy.ts';
import { pauseSandbox } from './lifecycle/pause.ts';
import type { Manager } from './manager.ts';

/**
 * The TTL reaper: a running sandbox whose `endAt` has passed is paused or killed, per its
 * timeout action. Only running sandboxes count time: a paused sandbox keeps its remaining
 * time (`remainingMs`) until it resumes. Paused-by-reaper IDs are reported by the next
 * List (`auto_paused_ids`).
 */
export class Reaper {
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;

  constructor(
    private readonly m: Manager,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.ticking)
        this.ticking = this.tick()
          .then(() => undefined)
          .finally(() => (this.ticking = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
  }

  /** One pass; returns the ids acted on. `now` is injectable so tests need no clock. */
  async tick(now = Date.now()): Promise<{ paused: string[]; killed: string[] }> {
    const due = [...this.m.boxes.values()].filter(
      (sb) => sb.status === 'running' && sb.endAt > 0 && sb.endAt <= now,
    );
    const out = { paused: [] as string[], killed: [] as string[] };
    await Promise.all(
      due.map(async (sb) => {
        try {
          if (sb.timeoutAction === 'pause') {
            await pauseSandbox(this.m, sb.id, { byReaper: true });
            this.m.autoPaused.push(sb.id);
            out.paused.push(sb.id);
          } else {
            await destroySandbox(this.m, sb.id);
            out.killed.push(sb.id);
          }
          this.m.log.info(
            { event: 'reaper', sandbox: sb.id, action: sb.timeoutAction },
            'timeout reached',
          );
        } catch (e) {
          // Raced with another verb (the lock serialised it and the status moved on), or failed.
          this.m.log.warn(
            { event: 'reaper-failed', sandbox: sb.id, error: errorMessage(e) },
            'reaper could not act',
          );
        }
      }),
    );
    return out;
  }
}
