import type { Manager } from '../manager.ts';
import { killOrphanVms } from './orphans.ts';
import { type ReadoptReport, readoptRunning } from './readopt.ts';
import { type RestoreReport, restorePaused } from './restore.ts';
import { type SweepReport, sweepStagingAndTrash } from './sweep.ts';

export interface StartupReport {
  sweep: SweepReport;
  readopt: ReadoptReport;
  orphansKilled: number[];
  restore: RestoreReport;
}

/**
 * Startup, in this order, before the API serves anything (DESIGN.md section 4):
 * sweep staging/trash → re-adopt live VMs → end orphan VMs → restore paused sandboxes.
 * (The caller then starts the TTL reaper and serves.) No step throws for one sandbox.
 */
export async function recover(m: Manager): Promise<StartupReport> {
  const sweep = await sweepStagingAndTrash(m.dir, m.log);
  const readopt = await readoptRunning(m);
  const orphansKilled = await killOrphanVms(m);
  const restore = await restorePaused(m);
  return { sweep, readopt, orphansKilled, restore };
}
