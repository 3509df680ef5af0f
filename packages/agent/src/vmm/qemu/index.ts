import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { layout } from '@wrenn/common';
import type { Accelerator } from './args.ts';
import { probeAccelerator } from './probe.ts';

export { type Accelerator, qemuArgs } from './args.ts';
export {
  defaultCmdline,
  ENVD_GUEST_PORT,
  processName,
  QemuDriver,
  RUNTIME_FILES,
  runtimePaths,
} from './driver.ts';
export { freeLoopbackPort, waitEnvdHealthy } from './net.ts';
export { probeAccelerator } from './probe.ts';
export { QmpClient } from './qmp.ts';
export { readSnapshotMeta, SNAPSHOT_FILES, type SnapshotMeta } from './snapshot.ts';
export { buildTemplateSnapshot, snapshotTemplate } from './template.ts';

/**
 * The accelerator for this host: the cached probe verdict (a real boot under KVM, see
 * probe.ts) when WRENN_DIR has a kernel to probe with, else TCG.
 */
export async function hostAccelerator(
  dir: string,
): Promise<{ accelerator: Accelerator; reason: string }> {
  const kernels = layout(dir).kernels;
  const kernel = (await readdir(kernels).catch(() => [] as string[]))
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .pop();
  if (!kernel && !process.env.WRENN_ACCEL)
    return { accelerator: 'tcg', reason: `no kernel in ${kernels} to probe KVM with` };
  const v = await probeAccelerator({ dir, kernel: join(kernels, kernel ?? '') });
  return { accelerator: v.accelerator, reason: v.reason };
}
