import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, fsyncPath, layout, WrennError } from '@wrenn/common';
import { step } from '../crash.ts';
import type { Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import { removeDir, sandboxPaths, trashName } from '../store.ts';

/**
 * Destroy: stop the VM if it has one → release the base image if it holds one → rename
 * the dir to trash → delete it → release the slot and forget the sandbox.
 *
 * Releases exactly what the sandbox owns: a paused or restored sandbox owns only its slot.
 */
export async function destroySandbox(m: Manager, id: string): Promise<void> {
  const sb = m.get(id);
  await sb.lock.run(() => destroyLocked(m, sb));
}

export async function destroyLocked(m: Manager, sb: Sandbox): Promise<void> {
  if (!m.boxes.has(sb.id)) throw new WrennError('not_found', `sandbox ${sb.id} not found`);
  const log = m.log.child({ sandbox: sb.id });
  const f = { sandbox: sb.id };
  const sandboxes = layout(m.dir).sandboxes;
  const prev = sb.status;
  sb.status = 'stopping';
  try {
    if (sb.vm) {
      const vm = sb.vm;
      await step(log, 'destroy', 'stop-vm', f, () => m.driver.kill(vm));
      sb.vm = undefined;
    }
    if (sb.baseImage) {
      m.baseRefs.release(sb.baseImage);
      sb.baseImage = undefined;
    }
    const trash = join(sandboxes, trashName(sb.id));
    const moved = await step(log, 'destroy', 'trash-dir', f, async () => {
      try {
        await rename(sandboxPaths(m.dir, sb.id).live, trash);
        await fsyncPath(sandboxes);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw e;
      }
    });
    if (moved) await step(log, 'destroy', 'delete-trash', f, () => removeDir(trash));
  } catch (e) {
    sb.status = 'error';
    sb.error = `destroy failed: ${errorMessage(e)}`;
    log.error({ event: 'destroy-failed', error: sb.error, was: prev }, 'destroy failed');
    throw new WrennError('internal', `destroy of ${sb.id} failed: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  m.slots.release(sb.slot);
  m.boxes.delete(sb.id);
  sb.status = 'stopped';
  log.info({ event: 'destroyed' }, 'sandbox destroyed');
}
