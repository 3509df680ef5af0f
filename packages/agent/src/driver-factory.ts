import type { TemplateSnapshotBuilder } from './manager.ts';
import type { VmmDriver } from './vmm/driver.ts';
import { buildTemplateSnapshot, hostAccelerator, QemuDriver } from './vmm/qemu/index.ts';
import { streamTool, streamToolDir } from './vmm/qemu/stream-tool.ts';

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
  const binDir = streamToolDir(dir);
  // Every snapshot and restore goes through wrenn-stream: an agent that cannot build it
  // refuses to start, with the compiler's words, rather than fail its first create.
  await streamTool(binDir);
  const driver = new QemuDriver({ accel: verdict.accelerator, binDir });
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
