import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { layout, WrennError } from '@wrenn/common';
import type { TemplateSnapshotBuilder } from './manager.ts';
import type { VmmDriver } from './vmm/driver.ts';
import { QemuDriver } from './vmm/qemu/driver.ts';
import { probeAccelerator } from './vmm/qemu/probe.ts';
import { buildTemplateSnapshot } from './vmm/qemu/template.ts';

/**
 * The one place that picks a VMM implementation: today QEMU (`vmm/qemu`), with the
 * accelerator its bounded probe chose (cached per host kernel and QEMU version).
 */
export interface DriverBundle {
  driver: VmmDriver;
  accelerator: string;
  templateSnapshotBuilder?: TemplateSnapshotBuilder;
}

export async function defaultDriver(dir: string): Promise<DriverBundle> {
  const kernel = await anyKernel(dir);
  const verdict = await probeAccelerator({ dir, kernel });
  const driver = new QemuDriver({ accel: verdict.accelerator });
  const templateSnapshotBuilder: TemplateSnapshotBuilder = async (a) => {
    await buildTemplateSnapshot(driver, {
      rootfs: a.rootfs,
      kernel: a.kernel,
      initrd: a.initrd,
      ...(a.cmdline ? { cmdline: a.cmdline } : {}),
      vcpus: a.vcpus,
      memoryMb: a.memoryMb,
      snapshotDir: a.outDir,
    });
    return { disk: 'disk.qcow2' };
  };
  return { driver, accelerator: verdict.accelerator, templateSnapshotBuilder };
}

async function anyKernel(dir: string): Promise<string> {
  const kdir = layout(dir).kernels;
  const v = (await readdir(kdir).catch(() => [] as string[])).find((n) => n.startsWith('vmlinuz-'));
  if (!v) throw new WrennError('failed_precondition', `no kernel in ${kdir}: build images first (wrenn images build minimal)`);
  return join(kdir, v);
}
