import { WrennError } from '@wrenn/common';
import type { TemplateSnapshotBuilder } from './manager.ts';
import type { VmmDriver } from './vmm/driver.ts';

/**
 * The one place that picks a VMM implementation: today QEMU (`vmm/qemu`). Loaded lazily so
 * tests that inject a driver never load it.
 */
export interface DriverBundle {
  driver: VmmDriver;
  accelerator: string;
  templateSnapshotBuilder?: TemplateSnapshotBuilder;
}

export async function defaultDriver(dir: string): Promise<DriverBundle> {
  const path = './vmm/qemu/index.ts';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path)) as Record<string, unknown>;
  } catch (e) {
    throw new WrennError('failed_precondition', `the QEMU VMM driver is not available: ${(e as Error).message}`);
  }
  const make = mod.createAgentDriver as ((o: { dir: string }) => Promise<DriverBundle>) | undefined;
  if (typeof make !== 'function') throw new WrennError('failed_precondition', 'vmm/qemu exports no createAgentDriver');
  return make({ dir });
}
