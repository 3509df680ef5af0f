import { inRange, LIMITS, type Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import { runningStateOf, sandboxPaths, writeRunningState } from '../store.ts';

/**
 * SetTimeout: the sandbox ends `timeoutSeconds` from now (0 = never). On a paused sandbox
 * it sets the time it will have once resumed. Persisted so a re-adopted sandbox keeps it.
 */
export async function setSandboxTimeout(
  m: Manager,
  id: string,
  timeoutSeconds: number,
): Promise<Sandbox> {
  inRange('timeout_seconds', timeoutSeconds, 0, LIMITS.timeoutSeconds.max);
  const sb = m.get(id);
  return sb.lock.run(async () => {
    m.expectStatus(sb, 'set the timeout of', 'running', 'paused');
    sb.timeoutMs = timeoutSeconds * 1000;
    if (sb.status === 'paused') {
      sb.remainingMs = sb.timeoutMs;
      return sb;
    }
    sb.endAt = timeoutSeconds ? Date.now() + timeoutSeconds * 1000 : 0;
    if (sb.vm && sb.baseImage) {
      await writeRunningState(
        sandboxPaths(m.dir, id).live,
        runningStateOf(sb, 'running', sb.vm, sb.baseImage),
      );
    }
    return sb;
  });
}
