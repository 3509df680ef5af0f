import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type CpioEntry, cpioNewc } from './cpio.ts';
import type { KernelFiles } from './kernel.ts';
import { INITRAMFS_MODULES } from './modules.ts';

/**
 * The initramfs: static busybox, the recipe's /init and the virtio modules, nothing else
 * (about 1 MiB compressed). /dev/console exists in the archive so the kernel can give
 * /init a console before devtmpfs is mounted.
 */
export async function buildInitramfs(opts: {
  kernel: KernelFiles;
  busybox: string;
  initScript: string;
}): Promise<Buffer> {
  const entries: CpioEntry[] = [
    { path: 'bin', type: 'dir', mode: 0o755 },
    { path: 'dev', type: 'dir', mode: 0o755 },
    { path: 'dev/console', type: 'chardev', mode: 0o600, major: 5, minor: 1 },
    { path: 'proc', type: 'dir', mode: 0o755 },
    { path: 'root', type: 'dir', mode: 0o755 },
    { path: 'lib', type: 'dir', mode: 0o755 },
    { path: 'lib/modules', type: 'dir', mode: 0o755 },
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: await readFile(opts.busybox) },
    { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    { path: 'init', type: 'file', mode: 0o755, data: await readFile(opts.initScript) },
  ];
  for (const m of INITRAMFS_MODULES) {
    const ko = opts.kernel.modules.get(m)!;
    entries.push({
      path: join('lib/modules', `${m}.ko`),
      type: 'file',
      mode: 0o644,
      data: await readFile(ko),
    });
  }
  // Level 6: the kernel inflates it under TCG on every boot; 9 saves little and costs build time.
  return gzipSync(cpioNewc(entries), { level: 6 });
}
