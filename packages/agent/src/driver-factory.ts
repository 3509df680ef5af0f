import { join } from 'node:path';
import { layout } from '@wrenn/common';
import type { TemplateSnapshotBuilder } from './manager.ts';
import type { VmmDriver } from './vmm/driver.ts';
import { buildTemplateSnapshot, hostAccelerator, QemuDriver } from './vmm/qemu/index.ts';

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
  const verdict = await hostAccelerator(dir);
  const driver = new QemuDriver({
    accel: verdict.accelerator,
    binDir: join(layout(dir).cache, 'bin'),
  });
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
