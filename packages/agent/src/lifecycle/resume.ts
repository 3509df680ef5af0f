import { rm } from 'node:fs/promises';
import { errorMessage, fsyncPath, WrennError } from '@wrenn/common';
import { CleanupStack } from '../cleanup.ts';
import { step } from '../crash.ts';
import { initEnvd, waitEnvdHealthy } from '../envd-client.ts';
import { LIMITS, type Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import { readPauseMeta, runningStateOf, sandboxPaths, writeRunningState } from '../store.ts';
import { resolveTemplateFor } from '../templates.ts';
import { vmSpecOf } from './vm-spec.ts';

/**
 * Resume on the same slot: base-image reference → VM from the pause snapshot in the live
 * dir → running state → envd healthy → /init (fixes the guest clock) → drop the pause meta.
 *
 * The meta is dropped last: until then a crash leaves a paused sandbox (the next startup
 * ends any VM it finds for it and restores it as paused). A failure unwinds to `paused`.
 * A sandbox can be paused and resumed any number of times.
 */
export async function resumeSandbox(m: Manager, id: string, timeoutSeconds = 0): Promise<Sandbox> {
  m.refuseWhenClosing();
  if (
    !Number.isInteger(timeoutSeconds) ||
    timeoutSeconds < 0 ||
    timeoutSeconds > LIMITS.timeoutSeconds.max
  ) {
    throw new WrennError(
      'invalid_argument',
      `timeout_seconds ${timeoutSeconds} is out of range 0..${LIMITS.timeoutSeconds.max}`,
    );
  }
  const sb = m.get(id);
  return sb.lock.run(async () => {
    m.expectStatus(sb, 'resume', 'paused');
    const log = m.log.child({ sandbox: id });
    const f = { sandbox: id };
    const paths = sandboxPaths(m.dir, id);
    let meta: Awaited<ReturnType<typeof readPauseMeta>>;
    try {
      meta = await readPauseMeta(paths.live);
    } catch (e) {
      throw new WrennError(
        'failed_precondition',
        `pause snapshot of ${id} is unreadable: ${errorMessage(e)}`,
        { cause: e },
      );
    }
    const tpl = await resolveTemplateFor(m.dir, sb.teamId, sb.templateId).catch((e) => {
      throw new WrennError('failed_precondition', `cannot resume ${id}: ${errorMessage(e)}`, {
        cause: e,
      });
    });
    sb.status = 'resuming';
    const cleanup = new CleanupStack(log);
    try {
      m.baseRefs.acquire(meta.base_image);
      sb.baseImage = meta.base_image;
      cleanup.push('release-base', () => {
        m.baseRefs.release(meta.base_image);
        sb.baseImage = undefined;
      });

      const vm = await step(log, 'resume', 'start-vm', f, () =>
        m.driver.start(vmSpecOf(m, sb, tpl), { kind: 'snapshot', snapshotDir: paths.live }),
      );
      sb.vm = vm;
      cleanup.push('kill-vm', async () => {
        sb.vm = undefined;
        await m.driver.kill(vm);
      });
      sb.startedAt = Date.now();
      const remaining =
        timeoutSeconds > 0
          ? timeoutSeconds * 1000
          : sb.remainingMs > 0
            ? sb.remainingMs
            : sb.timeoutMs;
      sb.endAt = remaining > 0 ? Date.now() + remaining : 0;
      if (timeoutSeconds > 0) sb.timeoutMs = timeoutSeconds * 1000;

      await step(log, 'resume', 'write-running-state', f, () =>
        writeRunningState(paths.live, runningStateOf(sb, 'running', vm, meta.base_image)),
      );
      cleanup.push('remove-running-state', () => rm(paths.runningState, { force: true }));
      const port = m.slots.envdPort(sb.slot);
      await step(log, 'resume', 'wait-envd', f, () => waitEnvdHealthy(port, m.envdReadyTimeoutMs));
      await step(log, 'resume', 'init-envd', f, () =>
        initEnvd(
          port,
          {
            envVars: sb.envVars,
            accessToken: sb.envdAccessToken, // '' clears a token a snapshot's envd may hold
            timestamp: new Date().toISOString(),
          },
          sb.envdAccessToken || undefined,
        ),
      );
      await step(log, 'resume', 'drop-pause-meta', f, async () => {
        await rm(paths.meta);
        await fsyncPath(paths.live);
      });
      cleanup.disarm();
      sb.status = 'running';
      sb.remainingMs = 0;
      sb.error = undefined;
      log.info({ event: 'resumed', slot: sb.slot }, 'sandbox resumed');
      return sb;
    } catch (e) {
      log.warn({ event: 'resume-failed', error: errorMessage(e) }, 'resume failed, back to paused');
      await cleanup.unwind();
      sb.status = 'paused';
      sb.endAt = 0;
      if (e instanceof WrennError) throw e;
      throw new WrennError(
        'internal',
        `resume of ${id} failed: ${errorMessage(e)}; it stays paused`,
        { cause: e },
      );
    }
  });
}
