import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { layout, wrennDir } from '@wrenn/common';
import { type ImageManifest, ROOTFS_FILE, readManifest } from './manifest.ts';

export interface ImageInfo {
  team: string;
  name: string;
  /** Directory of the image: rootfs.ext4 and manifest.json. */
  dir: string;
  /** False when the directory has no valid manifest (not usable). */
  valid: boolean;
  /** Disk space the rootfs really uses (it is sparse). */
  diskBytes?: number;
  manifest?: ImageManifest;
}

/** Images under WRENN_DIR/images/<team>/<name>/, valid or not, sorted by team then name. */
export async function listImages(dir = wrennDir()): Promise<ImageInfo[]> {
  const root = layout(dir).images;
  const out: ImageInfo[] = [];
  for (const team of (await readdir(root, { withFileTypes: true }).catch(() => [])).filter((e) =>
    e.isDirectory(),
  )) {
    for (const e of await readdir(join(root, team.name), { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.includes('.')) continue;
      const imageDir = join(root, team.name, e.name);
      const manifest = await readManifest(imageDir);
      const rootfs = await stat(join(imageDir, ROOTFS_FILE)).catch(() => undefined);
      out.push({
        team: team.name,
        name: e.name,
        dir: imageDir,
        valid: !!manifest && !!rootfs,
        diskBytes: rootfs ? rootfs.blocks * 512 : undefined,
        manifest,
      });
    }
  }
  return out.sort((a, b) => a.team.localeCompare(b.team) || a.name.localeCompare(b.name));
}

/** Absolute paths a VM needs to boot an image, from its manifest. */
export function bootFiles(dir: string, image: ImageInfo & { manifest: ImageManifest }) {
  return {
    kernel: join(dir, image.manifest.kernel.vmlinuz.path),
    initrd: join(dir, image.manifest.kernel.initramfs.path),
    rootfs: join(image.dir, image.manifest.rootfs.path),
    cmdline: image.manifest.kernel.cmdline,
  };
}
