import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLoadOrder, INITRAMFS_MODULES, moduleDepends } from './modules.ts';

const ko = (depends: string) =>
  Buffer.from(`\x7fELF...\0license=GPL\0depends=${depends}\0retpoline=Y\0`, 'latin1');
const dir = await mkdtemp(join(tmpdir(), 'wrenn-modules-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

async function fakeModules(deps: Record<string, string>) {
  const paths = new Map<string, string>();
  for (const [name, d] of Object.entries(deps)) {
    const p = join(dir, `${name}.ko`);
    await writeFile(p, ko(d));
    paths.set(name, p);
  }
  return paths;
}

describe('module dependencies', () => {
  it('reads depends= from the .modinfo strings', () => {
    expect(moduleDepends(ko('virtio_ring,virtio,net_failover'))).toEqual([
      'virtio_ring',
      'virtio',
      'net_failover',
    ]);
    expect(moduleDepends(ko(''))).toEqual([]);
  });

  it('accepts the DESIGN.md load order with the real dependency graph', async () => {
    const paths = await fakeModules({
      virtio_ring: '',
      virtio: 'virtio_ring',
      virtio_mmio: 'virtio,virtio_ring',
      virtio_blk: 'virtio,virtio_ring',
      failover: '',
      net_failover: 'failover',
      virtio_net: 'virtio_ring,virtio,net_failover',
    });
    await expect(checkLoadOrder(INITRAMFS_MODULES, paths)).resolves.toBeUndefined();
  });

  it('rejects an order that loads a module before its dependency', async () => {
    const paths = await fakeModules({ a: 'b', b: '' });
    await expect(checkLoadOrder(['a', 'b'], paths)).rejects.toThrow(
      'module a needs b, which is not loaded before it',
    );
    await expect(checkLoadOrder(['b', 'a', 'missing'], paths)).rejects.toThrow(
      'no module missing.ko',
    );
  });
});
