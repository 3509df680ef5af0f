import { readFile } from 'node:fs/promises';
import { WrennError } from '@wrenn/common';

/**
 * The virtio drivers the initramfs loads, in load order (DESIGN.md section 3): each one
 * depends only on modules before it. ext4 is built into Debian's cloud kernel.
 */
export const INITRAMFS_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_mmio',
  'virtio_blk',
  'failover',
  'net_failover',
  'virtio_net',
] as const;

/** The `depends=` field of a module's .modinfo section (no modules.dep needed). */
export function moduleDepends(ko: Uint8Array): string[] {
  const text = Buffer.from(ko).toString('latin1');
  const m = text.match(/\0depends=([^\0]*)\0/);
  return m?.[1] ? m[1].split(',').filter(Boolean) : [];
}

/**
 * Check that `order` loads every module after the modules it depends on and that no
 * dependency is missing from the list; the initramfs insmods in exactly this order.
 */
export async function checkLoadOrder(order: readonly string[], paths: Map<string, string>) {
  const loaded = new Set<string>();
  for (const name of order) {
    const path = paths.get(name);
    if (!path) throw new WrennError('internal', `kernel package has no module ${name}.ko`);
    for (const dep of moduleDepends(await readFile(path))) {
      if (!loaded.has(dep)) {
        throw new WrennError(
          'internal',
          `module ${name} needs ${dep}, which is not loaded before it`,
        );
      }
    }
    loaded.add(name);
  }
}
