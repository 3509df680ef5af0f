import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * WRENN_DIR holds everything Wrenn keeps on disk (DESIGN.md section 4):
 *   kernels/                      vmlinuz-<version>, initramfs-<version>
 *   images/<team>/<template>/     rootfs.ext4 (base), snapshot files, template.json
 *   sandboxes/<id>/               overlay, sandbox.json, paused snapshot
 */
export function wrennDir(explicit?: string): string {
  return resolve(explicit ?? process.env.WRENN_DIR ?? join(homedir(), '.wrenn'));
}

/** Team that owns the images Wrenn builds itself (`minimal`, `base`). */
export const SYSTEM_TEAM = 'public';

export const layout = (dir: string) => ({
  root: dir,
  kernels: join(dir, 'kernels'),
  images: join(dir, 'images'),
  image: (team: string, template: string) => join(dir, 'images', team, template),
  sandboxes: join(dir, 'sandboxes'),
  sandbox: (id: string) => join(dir, 'sandboxes', id),
  cache: join(dir, 'cache'),
  tmp: join(dir, 'tmp'),
});
