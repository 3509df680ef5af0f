import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ENVD_PORT, listImages } from '@wrenn/images';
import { describe, expect, inject, it } from 'vitest';
import { withVm } from '../../../../test/helpers/vm.ts';

const wrennDir = inject('wrennDir');

describe('built images boot under TCG with user-mode networking', () => {
  it('minimal: guest init runs and envd answers /health over the forwarded port', async () => {
    await withVm({ wrennDir, image: 'minimal', accel: 'tcg' }, async (vm) => {
      const res = await fetch(`${vm.envdUrl}/health`);
      expect(res.status).toBe(204);
      // The console shows our init ran and brought up the network it was told to.
      expect(vm.console()).toMatch(/wrenn-init: started/);
      expect(vm.console()).toMatch(/wrenn-init: network 10\.0\.2\.15\/24 via 10\.0\.2\.2/);
      expect(vm.console()).not.toMatch(/FATAL/);
      // envd started from the V8 snapshot the build made in a VM of the same CPU model.
      expect(vm.console()).toMatch(/wrenn-init: envd from its startup snapshot/);
      expect(vm.console()).not.toMatch(/does not fit|envd exited/);
    });
  });

  it('minimal: on other CPU features envd refuses its snapshot and starts from the bundle', async () => {
    // qemu64 lacks features `max` has (SSE4, AVX...): V8 rejects the blob, node exits 14.
    await withVm({ wrennDir, image: 'minimal', accel: 'tcg', cpu: 'qemu64' }, async (vm) => {
      expect((await fetch(`${vm.envdUrl}/health`)).status).toBe(204);
      expect(vm.console()).toMatch(/wrenn-init: envd snapshot does not fit this CPU/);
      expect(vm.console()).not.toMatch(/envd exited/);
    });
  });

  it('base: Debian userland with user `user` boots to envd ready', async () => {
    await withVm({ wrennDir, image: 'base', accel: 'tcg' }, async (vm) => {
      expect((await fetch(`${vm.envdUrl}/health`)).status).toBe(204);
    });
  });

  it('the manifests name complete, hashed kernel, initramfs and rootfs files', async () => {
    const images = await listImages(wrennDir);
    for (const name of ['minimal', 'base']) {
      const img = images.find((i) => i.name === name && i.team === 'public');
      expect(img?.valid).toBe(true);
      const m = img!.manifest!;
      expect(m.guest.envdPort).toBe(ENVD_PORT);
      expect(m.kernel.release).toMatch(/cloud-amd64$/);
      // Debian's cloud kernel is LZ4 + CONFIG_PVH: images boot the unpacked ELF directly.
      expect(m.kernel.vmlinuz.path).toBe(`kernels/vmlinux-${m.kernel.release}`);
      expect(m.inputsHash).toMatch(/^[0-9a-f]{64}$/);
      const initramfs = await readFile(join(wrennDir, m.kernel.initramfs.path));
      expect(initramfs.length).toBe(m.kernel.initramfs.bytes);
      // Kept small on purpose: the kernel inflates it on every boot.
      expect(initramfs.length).toBeLessThan(2 << 20);
      // A changed QEMU or TCG CPU model must rebuild the image: its envd snapshot is for them.
      expect(m.inputs.envdSnapshot).toMatchObject({
        cpu: 'max',
        qemu: expect.stringMatching(/QEMU/),
      });
    }
  });
});
