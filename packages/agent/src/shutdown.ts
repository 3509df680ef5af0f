import { errorMessage } from '@wrenn/common';
import { pauseLocked } from './lifecycle/pause.ts';
import type { Manager } from './manager.ts';

/**
 * Shutdown: stop taking work, then either leave every VM running for the next agent to
 * re-adopt (default), or pause every running sandbox — bounded: a pause still running at
 * the deadline is left to finish or die with the process; its VM is re-adopted or its
 * staging dir swept at the next start, so nothing is lost either way.
 */
export async function shutdownSandboxes(
  m: Manager,
  pauseAll: boolean,
  deadlineMs = 60_000,
): Promise<{ paused: string[]; failed: string[] }> {
  m.closing = true;
  const out = { paused: [] as string[], failed: [] as string[] };
  if (!pauseAll) return out;
  const running = [...m.boxes.values()].filter((sb) => sb.status === 'running');
  const work = Promise.all(
    running.map((sb) =>
      sb.lock
        .run(() => pauseLocked(m, sb))
        .then(
          () => out.paused.push(sb.id),
          (e) => {
            out.failed.push(sb.id);
            m.log.warn(
              { event: 'shutdown-pause-failed', sandbox: sb.id, error: errorMessage(e) },
              'pause at shutdown failed',
            );
          },
        ),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((r) => (timer = setTimeout(r, deadlineMs)))]);
  clearTimeout(timer);
  return out;
}
