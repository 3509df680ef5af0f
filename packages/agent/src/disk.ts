import { readFile, stat, writeFile } from 'node:fs/promises';
import { WrennError } from '@wrenn/common';
import { createOverlay, qcow2VirtualSize } from './vmm/qemu/disk.ts';

/**
 * Blank overlays already made, by base (path, size, mtime), format and size. A new qcow2
 * overlay is the same bytes for every clone of a base, so after the first `qemu-img create`
 * a create writes those bytes itself instead of spawning qemu-img (~12 ms per create).
 */
const blankOverlays = new Map<string, Buffer>();
const BLANK_CACHE_MAX = 64;

/**
 * The sandbox's writable disk: a qcow2 overlay backed by the template's read-only raw
 * base image. Sized `diskMb` when given (must not be smaller than the base).
 */
export async function createSandboxOverlay(
  base: string,
  overlay: string,
  diskMb: number,
  baseFormat: 'raw' | 'qcow2' = 'raw',
): Promise<void> {
  const st = await stat(base).catch((e) => {
    throw new WrennError('not_found', `base image ${base}: ${(e as Error).message}`, { cause: e });
  });
  // qemu-img accepts an overlay smaller than its base: the guest would see a cut-off disk.
  const baseBytes =
    diskMb === 0 ? 0 : baseFormat === 'raw' ? st.size : await qcow2VirtualSize(base);
  if (diskMb * 1024 * 1024 < baseBytes) {
    throw new WrennError(
      'invalid_argument',
      `disk_mb ${diskMb} is smaller than the template's base image (${Math.ceil(baseBytes / 1024 / 1024)} MiB)`,
    );
  }
  const key = JSON.stringify([base, st.size, st.mtimeMs, st.ino, baseFormat, diskMb]);
  const blank = blankOverlays.get(key);
  if (blank) {
    await writeFile(overlay, blank, { flag: 'wx' }).catch((e) => {
      throw new WrennError(
        (e as NodeJS.ErrnoException).code === 'ENOSPC' ? 'resource_exhausted' : 'internal',
        `writing ${overlay}: ${(e as Error).message}`,
        { cause: e },
      );
    });
    return;
  }
  await createOverlay(base, baseFormat, overlay, diskMb);
  if (blankOverlays.size >= BLANK_CACHE_MAX) blankOverlays.clear();
  blankOverlays.set(key, await readFile(overlay));
}
