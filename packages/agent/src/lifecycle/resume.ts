import { rm } from 'node:fs/promises';
import { errorMessage, fsyncPath, WrennError } from '@wrenn/common';
import { CleanupStack } from '../cleanup.ts';
import { step } from '../crash.ts';
import { inRange, LIMITS, type Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import { readPauseMeta, runningStateOf, sandboxPaths, writeRunningState } from '../store.ts';
import { resolveTemplateFor } from '../templates.ts';
import { initSandboxEnvd } from './envd-init.ts';
import { vmSpecOf } from './vm-spec.ts';

/**
 * Resume on the same slot: base-image reference → VM loaded from the pause snapshot with
 * its vCPUs stopped → running state → drop the pause meta (the commit point) → run the
 * vCPUs → envd healthy → /init (fixes the guest clock).
 *
 * The guest shares the snapshot's overlay, so it must not run while the snapshot can still
 * be restored: before the commit a crash or failure leaves a paused sandbox with an
 * untouched disk (the next startup ends the stopped VM and restores it as paused); after
 * it the sandbox is the running VM's, and a failure marks it `error` with its data kept.
 * A sandbox can be paused and resumed any number of times.
 */
export async function resumeSandbox(m: Manager, id: string, timeoutSeconds = 0): Promise<Sandbox> {
  m.refuseWhenClosing();
  inRange('timeout_seconds', timeoutSeconds, 0, LIMITS.timeoutSeconds.max);
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
    let committed = false;
    // After the commit there is no snapshot to go back to: keep the VM and its data.
    const lateFailure = (e: unknown): never => {
      sb.status = 'error';
      sb.error = `resume failed after leaving its snapshot: ${errorMessage(e)}`;
      log.error({ event: 'resume-failed-late', error: sb.error }, 'resume failed; data kept');
      throw new WrennError('internal', `${sb.error}; destroy the sandbox`, { cause: e });
    };
    try {
      m.baseRefs.acquire(meta.base_image);
      sb.baseImage = meta.base_image;
      cleanup.push('release-base', () => {
        m.baseRefs.release(meta.base_image);
        sb.baseImage = undefined;
      });

      const vm = await step(log, 'resume', 'start-vm', f, () =>
        m.driver.start(
          vmSpecOf(m, sb, tpl),
          { kind: 'snapshot', snapshotDir: paths.live },
          { stopped: true },
        ),
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
      await step(log, 'resume', 'drop-pause-meta', f, async () => {
        await rm(paths.meta);
        committed = true;
        cleanup.disarm();
        await fsyncPath(paths.live);
      });
    } catch (e) {
      if (committed) return lateFailure(e);
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

    // Committed: the pause snapshot is gone and the VM is the sandbox.
    const vm = sb.vm!;
    try {
      await step(log, 'resume', 'run-vcpus', f, () => m.driver.resume(vm));
      await step(log, 'resume', 'init-envd', f, () =>
        initSandboxEnvd(m, sb, sb.envdAccessToken || undefined),
      );
    } catch (e) {
      return lateFailure(e);
    }
    sb.status = 'running';
    sb.remainingMs = 0;
    sb.error = undefined;
    log.info({ event: 'resumed', slot: sb.slot }, 'sandbox resumed');
    return sb;
  });
}
