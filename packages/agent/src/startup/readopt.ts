import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, fsyncPath, layout, pathExists } from '@wrenn/common';
import type { Manager } from '../manager.ts';
import { newSandbox } from '../sandbox.ts';
import {
  isStagingOrTrash,
  listSandboxDirs,
  readRunningState,
  sandboxPaths,
  specFromMeta,
  trashDir,
  VM_DIR,
} from '../store.ts';

export interface ReadoptReport {
  adopted: string[];
  /** Dead VMs whose pause snapshot was kept (left to restore as paused). */
  keptPaused: string[];
  swept: string[];
}

/**
 * Startup step 2: re-adopt sandboxes whose VMM process outlived the agent (running state
 * file + a VM the driver can attach to). Dead ones are swept — but a pause snapshot in
 * the dir is kept (only the running state goes), for step 3 to restore.
 *
 * A re-adopted VM whose vCPUs are stopped (an interrupted pause, or a resume interrupted
 * after its commit) runs again. A re-adopted `starting` sandbox (create never returned) is
 * destroyed. One that still has a pause meta is a resume interrupted before its commit:
 * its VM never ran, so it is ended and the sandbox stays paused.
 */
export async function readoptRunning(m: Manager): Promise<ReadoptReport> {
  const report: ReadoptReport = { adopted: [], keptPaused: [], swept: [] };
  const sandboxes = layout(m.dir).sandboxes;
  for (const name of await listSandboxDirs(sandboxes)) {
    if (isStagingOrTrash(name)) continue;
    const paths = sandboxPaths(m.dir, name);
    if (!(await pathExists(paths.runningState))) continue;
    const log = m.log.child({ sandbox: name });
    try {
      const hasMeta = await pathExists(paths.meta);
      const state = await readRunningState(paths.live).catch((e) => {
        log.warn(
          { event: 'readopt:bad-state', error: errorMessage(e) },
          'unreadable running state',
        );
        return undefined;
      });
      const ref =
        state && state.sandbox_id === name
          ? await m.driver.adopt(state.vm).catch(() => undefined)
          : undefined;

      if (hasMeta) {
        // A dead VM, or a resume that never reached its commit (its VM was loaded with the
        // vCPUs stopped and never ran): the snapshot and its disk are untouched. It stays
        // paused; only the running state and the VM go.
        if (ref) await m.driver.kill(ref).catch(() => undefined);
        await rm(paths.runningState, { force: true });
        await rm(join(paths.live, VM_DIR), { recursive: true, force: true });
        await fsyncPath(paths.live);
        report.keptPaused.push(name);
        log.info(
          { event: ref ? 'readopt:unfinished-resume' : 'readopt:dead-kept-snapshot' },
          ref ? 'resume never committed; kept paused' : 'VM gone; pause snapshot kept',
        );
        continue;
      }
      if (!ref || !state) {
        await trashDir(sandboxes, name);
        report.swept.push(name);
        log.info({ event: 'readopt:dead-swept' }, 'VM gone; running sandbox swept');
        continue;
      }
      if (state.phase === 'starting') {
        await m.driver.kill(ref).catch(() => undefined);
        await trashDir(sandboxes, name);
        report.swept.push(name);
        log.info({ event: 'readopt:unfinished-create' }, 'create never finished; VM destroyed');
        continue;
      }

      m.slots.reserve(state.slot_index);
      const sb = newSandbox(specFromMeta(state), state.slot_index, 'running');
      m.baseRefs.acquire(state.base_image);
      sb.baseImage = state.base_image;
      sb.vm = ref;
      sb.startedAt = Date.parse(state.started_at);
      sb.endAt = state.end_at;
      m.boxes.set(name, sb);

      const st = await m.driver.query(ref);
      if (st.state !== 'running') {
        await m.driver.resume(ref);
        log.info(
          { event: 'readopt:resumed-vcpus', was: st.state },
          'vCPUs were stopped by an interrupted pause or resume; running again',
        );
      }
      report.adopted.push(name);
      log.info({ event: 'readopt:adopted', slot: sb.slot }, 're-adopted running sandbox');
    } catch (e) {
      log.error(
        { event: 'readopt-failed', error: errorMessage(e) },
        're-adopt failed; sandbox left for restore',
      );
      const sb = m.boxes.get(name);
      if (sb) {
        if (sb.vm) await m.driver.kill(sb.vm).catch(() => undefined);
        if (sb.baseImage) m.baseRefs.release(sb.baseImage);
        m.slots.release(sb.slot);
        m.boxes.delete(name);
      }
      if (await pathExists(paths.meta))
        await rm(paths.runningState, { force: true }).catch(() => undefined);
    }
  }
  return report;
}
