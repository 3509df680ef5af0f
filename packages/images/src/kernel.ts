import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WrennError, writeFileAtomic } from '@wrenn/common';
import { aptStateKey, type DebPackage, downloadDeb, resolveMetapackage } from './apt.ts';
import { requireTool, run, TOOLS } from './exec.ts';
import { vmlinuxFromBzImage } from './lz4.ts';
import { checkLoadOrder, INITRAMFS_MODULES } from './modules.ts';
import type { Progress } from './progress.ts';

/** Debian's cloud kernel: small, virtio drivers as modules, ext4 built in. */
export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';

/** Bump when what is extracted from the package changes (part of every image's inputs). */
export const KERNEL_EXTRACT_FORMAT = 2;

export interface KernelFiles {
  package: DebPackage;
  /** `uname -r` of the kernel, e.g. 6.1.0-56-cloud-amd64. */
  release: string;
  vmlinuz: string;
  /** The same kernel uncompressed, booted through its PVH entry (undefined if unavailable). */
  vmlinux?: string;
  /** Module name → path of its .ko, for INITRAMFS_MODULES. */
  modules: Map<string, string>;
}

/**
 * The kernel package apt would install now. apt-cache takes seconds on a busy box, so the
 * answer is remembered in `cacheDir` for as long as apt's lists and sources are unchanged.
 */
export async function resolveKernelPackage(cacheDir?: string): Promise<DebPackage> {
  if (!cacheDir) return resolveMetapackage(KERNEL_METAPACKAGE, 'linux-image-');
  const memo = join(cacheDir, 'kernel-package.json');
  const key = await aptStateKey();
  const saved = await readFile(memo, 'utf8')
    .then((t) => JSON.parse(t) as { key: string; pkg: DebPackage })
    .catch(() => undefined);
  if (saved?.key === key && saved.pkg?.name && saved.pkg.version) return saved.pkg;
  const pkg = await resolveMetapackage(KERNEL_METAPACKAGE, 'linux-image-');
  await mkdir(cacheDir, { recursive: true });
  await writeFileAtomic(memo, JSON.stringify({ key, pkg }));
  return pkg;
}

/**
 * The kernel and its virtio modules, extracted once per package version into
 * `cacheDir/kernel/<package>_<version>/` (the .deb itself is kept in `cacheDir/debs/`).
 */
export async function ensureKernel(
  pkg: DebPackage,
  cacheDir: string,
  progress: Progress,
): Promise<KernelFiles> {
  const dir = join(
    cacheDir,
    'kernel',
    `${pkg.name}_${pkg.version.replace(/[^\w.+-]/g, '_')}.v${KERNEL_EXTRACT_FORMAT}`,
  );
  const release = pkg.name.replace(/^linux-image-/, '');
  const files = async (): Promise<KernelFiles> => ({
    package: pkg,
    release,
    vmlinuz: join(dir, 'vmlinuz'),
    ...((await stat(join(dir, 'vmlinux')).catch(() => undefined))
      ? { vmlinux: join(dir, 'vmlinux') }
      : {}),
    modules: new Map(INITRAMFS_MODULES.map((m) => [m, join(dir, 'modules', `${m}.ko`)])),
  });
  const done = await readFile(join(dir, 'complete'), 'utf8').catch(() => '');
  if (done) return files();

  progress.stage('download kernel');
  const debs = join(cacheDir, 'debs');
  await mkdir(debs, { recursive: true });
  const deb = await downloadDeb(pkg, debs);

  progress.stage('extract kernel');
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'x'), { recursive: true });
  await run(TOOLS.dpkgDeb, await requireTool(TOOLS.dpkgDeb), ['-x', deb, join(tmp, 'x')]);
  const boot = join(tmp, 'x', 'boot');
  const vmlinuz = (await readdir(boot)).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new WrennError('internal', `${pkg.name} has no /boot/vmlinuz-*`);
  await copyFile(join(boot, vmlinuz), join(tmp, 'vmlinuz'));
  // PVH boot needs the kernel built with CONFIG_PVH (Debian's is); else QEMU boots the bzImage.
  const config = await readFile(join(boot, vmlinuz.replace(/^vmlinuz-/, 'config-')), 'utf8').catch(
    () => '',
  );
  if (/^CONFIG_PVH=y$/m.test(config)) {
    progress.stage('unpack kernel (PVH)');
    const elf = vmlinuxFromBzImage(await readFile(join(boot, vmlinuz)));
    if (elf) await writeFile(join(tmp, 'vmlinux'), elf);
  }

  const modRoot = join(tmp, 'x', 'lib', 'modules', release, 'kernel');
  const found = await findModules(modRoot, new Set(INITRAMFS_MODULES));
  await checkLoadOrder(INITRAMFS_MODULES, found);
  await mkdir(join(tmp, 'modules'));
  for (const [name, path] of found) await copyFile(path, join(tmp, 'modules', `${name}.ko`));
  await rm(join(tmp, 'x'), { recursive: true, force: true });
  await writeFile(join(tmp, 'complete'), `${pkg.name} ${pkg.version}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return files();
}

async function findModules(root: string, wanted: Set<string>): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.endsWith('.ko') && wanted.has(e.name.slice(0, -3)))
        found.set(e.name.slice(0, -3), join(d, e.name));
    }
  };
  await walk(root);
  for (const m of wanted) {
    if (!found.has(m))
      throw new WrennError('internal', `kernel package has no uncompressed module ${m}.ko`);
  }
  return found;
}
