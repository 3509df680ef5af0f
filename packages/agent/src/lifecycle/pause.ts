import { link, mkdir, rename, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorMessage, fsyncPath, layout, WrennError, writeFileAtomic } from '@wrenn/common';
import { step } from '../crash.ts';
import type { Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import {
  OVERLAY,
  PAUSE_META,
  pauseMetaOf,
  removeDir,
  sandboxPaths,
  stagingName,
  trashName,
} from '../store.ts';

/**
 * Pause, crash-safely (DESIGN.md section 4):
 *
 *   drain-connections → pause-vcpus → write-staging → fsync-staging → link-overlay →
 *   write-meta → trash-live → promote-staging → stop-vm → delete-trash
 *
 * No round trip into the guest: the keep-alive connections a restore leaves dead are
 * dropped by envd's `/init`, which runs right after every restore (create and resume).
 *
 * The overlay is hard-linked into staging (not moved): until the swap, the live dir stays
 * complete, so a crash anywhere before `trash-live` leaves a running sandbox the next
 * startup re-adopts (its staging dir is swept). Between `trash-live` and
 * `promote-staging` the live dir is missing; the sweep then promotes the complete staging
 * dir (its meta is written last) — see startup/sweep.ts.
 *
 * A failure before the VM is gone rolls back to `running`; after, the sandbox is `error`
 * with its data kept. INVARIANT: a paused sandbox owns only its slot.
 */
export async function pauseSandbox(
  m: Manager,
  id: string,
  opts: { byReaper?: boolean } = {},
): Promise<Sandbox> {
  m.refuseWhenClosingUnless(opts.byReaper === true);
  const sb = m.get(id);
  return sb.lock.run(() => pauseLocked(m, sb));
}

/** The pause itself; the caller holds the sandbox's lock. Also used by shutdown. */
export async function pauseLocked(m: Manager, sb: Sandbox): Promise<Sandbox> {
  m.expectStatus(sb, 'pause', 'running');
  const id = sb.id;
  const log = m.log.child({ sandbox: id });
  const f = { sandbox: id };
  const vm = sb.vm!;
  const baseImage = sb.baseImage!;
  const sandboxes = layout(m.dir).sandboxes;
  const paths = sandboxPaths(m.dir, id);
  const staging = join(sandboxes, stagingName(id));
  const trash = join(sandboxes, trashName(id));
  const remainingMs = sb.endAt ? Math.max(0, sb.endAt - Date.now()) : 0;
  sb.status = 'pausing';

  let vcpusStopped = false;
  let liveTrashed = false;
  let promoted = false;
  try {
    const aborted = await step(log, 'pause', 'drain-connections', f, () =>
      sb.conns.drain(m.drainTimeoutMs),
    );
    if (aborted)
      log.info(
        { event: 'drain-aborted', aborted },
        'aborted in-flight requests at the drain deadline',
      );
    await step(log, 'pause', 'pause-vcpus', f, () => m.driver.pause(vm));
    vcpusStopped = true;
    const snap = await step(log, 'pause', 'write-staging', f, async () => {
      await mkdir(staging);
      return m.driver.snapshotToDir(vm, staging, 'full');
    });
    await step(log, 'pause', 'fsync-staging', f, async () => {
      for (const name of snap.files) await fsyncPath(join(staging, name));
      await fsyncPath(staging);
    });
    await step(log, 'pause', 'link-overlay', f, async () => {
      await link(paths.overlay, join(staging, OVERLAY));
      await fsyncPath(staging);
    });
    await step(log, 'pause', 'write-meta', f, async () => {
      const files = [];
      for (const name of [...snap.files, OVERLAY])
        files.push({ name, size: (await stat(join(staging, name))).size });
      const meta = pauseMetaOf(sb, baseImage, remainingMs, files);
      await writeFileAtomic(join(staging, PAUSE_META), `${JSON.stringify(meta, null, 2)}\n`, 0o600);
    });
    await step(log, 'pause', 'trash-live', f, async () => {
      await rename(paths.live, trash);
      liveTrashed = true;
      await fsyncPath(sandboxes);
    });
    await step(log, 'pause', 'promote-staging', f, async () => {
      await rename(staging, paths.live);
      promoted = true;
      await fsyncPath(sandboxes);
    });
  } catch (e) {
    // Early failure: the VM still holds the sandbox. Put everything back and keep running.
    const reason = errorMessage(e);
    const diskFull = await tooFullForSnapshot(staging, sb.memoryMb);
    log.warn(
      { event: 'pause-failed', error: reason, liveTrashed, promoted },
      'pause failed, rolling back',
    );
    try {
      if (promoted) await rename(paths.live, staging);
      if (liveTrashed) await rename(trash, paths.live);
      await fsyncPath(sandboxes);
      await removeDir(staging);
      if (vcpusStopped) await m.driver.resume(vm);
      sb.status = 'running';
    } catch (rollbackErr) {
      sb.status = 'error';
      sb.error = `pause failed (${reason}) and rollback failed (${errorMessage(rollbackErr)})`;
      log.error(
        { event: 'pause-rollback-failed', error: sb.error },
        'pause rollback failed; data kept',
      );
    }
    throw toPauseError(e, sb, diskFull);
  }

  // The paused snapshot is durable. From here the VM is released; failures keep the data.
  sb.status = 'paused';
  sb.remainingMs = remainingMs;
  sb.endAt = 0;
  sb.forwards.clear();
  try {
    // The VM's runtime dir moved with the live dir into the trash; the driver finds the
    // process by pid and the command line it was started with (the original paths).
    await step(log, 'pause', 'stop-vm', f, () => m.driver.kill(vm));
  } catch (e) {
    // Its vCPUs are stopped; the next startup's orphan sweep ends it. The snapshot is safe.
    log.warn({ event: 'stop-vm-failed', error: errorMessage(e) }, 'could not stop the paused VM');
  }
  sb.vm = undefined;
  m.baseRefs.release(baseImage);
  sb.baseImage = undefined;
  await step(log, 'pause', 'delete-trash', f, () => removeDir(trash)).catch((e) =>
    log.warn(
      { event: 'delete-trash-failed', error: errorMessage(e) },
      'trash left for the next sweep',
    ),
  );
  log.info({ event: 'paused', slot: sb.slot }, 'sandbox paused');
  return sb;
}

/**
 * A snapshot write cut short by a full disk surfaces in words the driver chose (a broken
 * pipe, a failed migration); statfs does not lie. A full snapshot needs up to the guest's
 * RAM: with less free than that after a failure, the disk is the reason.
 */
async function tooFullForSnapshot(path: string, memoryMb: number): Promise<boolean> {
  const st = await statfs(dirname(path)).catch(() => undefined);
  return st !== undefined && st.bavail * st.bsize < memoryMb * 1024 * 1024;
}

function toPauseError(e: unknown, sb: Sandbox, diskFull = false): WrennError {
  const msg = errorMessage(e);
  const tail =
    sb.status === 'running'
      ? 'the sandbox keeps running'
      : 'the sandbox is in error with its data kept';
  if (diskFull || (e as NodeJS.ErrnoException).code === 'ENOSPC' || /no space left/i.test(msg)) {
    return new WrennError(
      'resource_exhausted',
      `pause of ${sb.id} failed: no space left on device; ${tail}`,
      { cause: e },
    );
  }
  if (e instanceof WrennError)
    return new WrennError(e.code, `pause of ${sb.id} failed: ${msg}; ${tail}`, { cause: e });
  return new WrennError('internal', `pause of ${sb.id} failed: ${msg}; ${tail}`, { cause: e });
}
