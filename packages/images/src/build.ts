import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  layout,
  pathExists,
  SYSTEM_TEAM,
  WrennError,
  wrennDir,
  writeFileAtomic,
} from '@wrenn/common';
import { hostAptSources } from './apt.ts';
import { DEFAULT_CMDLINE, ENVD_PORT, IMAGE_NAMES, IMAGES, type ImageName } from './catalog.ts';
import { buildEnvdSnapshot, ENVD_SNAPSHOT_FORMAT } from './envd-snapshot.ts';
import { diskFullError, isDiskFull, requireTool, run, TOOLS } from './exec.ts';
import { makeExt4 } from './ext4.ts';
import { sha256, sha256File, sha256FileMemo } from './hash.ts';
import { buildInitramfs } from './initramfs.ts';
import { ensureKernel, KERNEL_EXTRACT_FORMAT, resolveKernelPackage } from './kernel.ts';
import { withLock } from './lock.ts';
import {
  assertImageName,
  type FileDigest,
  type ImageManifest,
  inputsHash,
  MANIFEST_FORMAT,
  ROOTFS_FILE,
  readManifest,
  staleReason,
  writeManifest,
} from './manifest.ts';
import { type Progress, quietProgress } from './progress.ts';
import { qemuVersionLine, TCG_CPU_MODEL } from './qemu.ts';
import { DEFAULT_RECIPES_DIR, type RecipeFiles, recipeFiles } from './recipes.ts';
import { parsePackageList, populateBase } from './rootfs/base.ts';
import { populateMinimal, USER_GID, USER_UID } from './rootfs/minimal.ts';
import { hostNodeRuntime, installRuntime, runtimeInputs } from './runtime.ts';

export interface BuildOptions {
  /** WRENN_DIR to build into (default: wrennDir()). */
  dir?: string;
  /** Download/extract cache (kernel .debs); default `<dir>/cache`. Tests share one. */
  cacheDir?: string;
  /** Recipe directory (default `<repo>/images`). */
  recipesDir?: string;
  progress?: Progress;
  /** Rebuild even when the inputs did not change. */
  force?: boolean;
}

export interface BuildResult {
  status: 'built' | 'cached';
  /** Why it was (re)built; undefined when cached. */
  reason?: string;
  manifest: ImageManifest;
  imageDir: string;
}

/**
 * Build one of Wrenn's images into `WRENN_DIR/images/public/<name>/` (rootfs.ext4 +
 * manifest.json) and its kernel + initramfs into `WRENN_DIR/kernels/`.
 *
 * INVARIANT: the image directory is replaced by one rename of a complete build directory,
 * manifest written last; a failed or interrupted build leaves the previous image (or none).
 *
 * @example const { status } = await buildImage('minimal', { progress: terminalProgress() })
 */
export async function buildImage(name: string, opts: BuildOptions = {}): Promise<BuildResult> {
  assertImageName(name, IMAGE_NAMES);
  const image = name as ImageName;
  if (IMAGES[image].needsRoot && process.getuid?.() !== 0) {
    throw new WrennError(
      'permission_denied',
      `building the ${image} image needs root (mmdebstrap installs Debian packages): run it as root or with sudo`,
    );
  }
  const dir = wrennDir(opts.dir);
  const paths = layout(dir);
  const progress = opts.progress ?? quietProgress;
  const cacheDir = opts.cacheDir ?? paths.cache;
  const recipes = recipeFiles(opts.recipesDir ?? DEFAULT_RECIPES_DIR);

  for (const tool of [
    TOOLS.busybox,
    TOOLS.mkfsExt4,
    TOOLS.dpkgDeb,
    TOOLS.aptGet,
    TOOLS.aptCache,
    TOOLS.ldd,
    TOOLS.qemu,
  ]) {
    await requireTool(tool);
  }
  if (image === 'base') await requireTool(TOOLS.mmdebstrap);

  try {
    // The image dir itself appears only by the final rename (a complete image or none).
    for (const d of [
      paths.kernels,
      dirname(paths.image(SYSTEM_TEAM, image)),
      paths.tmp,
      cacheDir,
    ]) {
      await mkdir(d, { recursive: true });
    }
    return await withLock(join(paths.images, '.build.lock'), () =>
      buildLocked(image, { dir, cacheDir, recipes, progress, force: opts.force ?? false }),
    );
  } catch (e) {
    if (isDiskFull(e)) throw diskFullError(dir, e);
    throw e;
  }
}

interface Ctx {
  dir: string;
  cacheDir: string;
  recipes: RecipeFiles;
  progress: Progress;
  force: boolean;
}

async function buildLocked(image: ImageName, ctx: Ctx): Promise<BuildResult> {
  const started = Date.now();
  const { progress } = ctx;
  const paths = layout(ctx.dir);
  const imageDir = paths.image(SYSTEM_TEAM, image);
  await sweepStaleBuilds(paths.tmp);

  progress.stage('check inputs');
  const busybox = await requireTool(TOOLS.busybox);
  const kernelPkg = await resolveKernelPackage(ctx.cacheDir);
  const runtime = await hostNodeRuntime();
  const inputs: Record<string, unknown> = {
    image,
    kernel: kernelPkg,
    kernelExtract: KERNEL_EXTRACT_FORMAT,
    cmdline: DEFAULT_CMDLINE,
    initramfsInit: await sha256File(ctx.recipes.initramfsInit),
    guestInit: await sha256File(ctx.recipes.guestInit),
    runtime: await runtimeInputs(runtime, busybox),
    // envd.blob is made in a VM of this CPU model on this QEMU (see envd-snapshot.ts).
    envdSnapshot: {
      format: ENVD_SNAPSHOT_FORMAT,
      cpu: TCG_CPU_MODEL,
      qemu: await qemuVersionLine(),
    },
  };
  if (image === 'base') inputs.base = await baseInputs(ctx.recipes);
  const wantHash = inputsHash(inputs);

  const release = kernelPkg.name.replace(/^linux-image-/, '');
  const old = await readManifest(imageDir);
  // The kernel QEMU boots: the uncompressed PVH vmlinux when the package allows, which
  // spares every boot the in-guest decompression; vmlinuz-<release> is kept beside it.
  const vmlinuzPath = join(paths.kernels, `vmlinuz-${release}`);
  const vmlinuxPath = join(paths.kernels, `vmlinux-${release}`);
  const bootKernelPath = old ? join(ctx.dir, old.kernel.vmlinuz.path) : vmlinuzPath;
  const initramfsPath = join(paths.kernels, `initramfs-${release}`);
  const reason = ctx.force
    ? 'forced'
    : staleReason(
        old,
        wantHash,
        {
          rootfs: await sizeOf(join(imageDir, ROOTFS_FILE)),
          vmlinuz: await sizeOf(bootKernelPath),
          initramfs: await sizeOf(initramfsPath),
        },
        {
          vmlinuz: await hashIfExists(bootKernelPath),
          initramfs: await hashIfExists(initramfsPath),
        },
      );
  if (!reason && old) {
    progress.done(`wrenn: image ${image} is up to date`);
    return { status: 'cached', manifest: old, imageDir };
  }

  const kernel = await ensureKernel(kernelPkg, ctx.cacheDir, progress);
  progress.stage('initramfs');
  const initramfs = await buildInitramfs({
    kernel,
    busybox,
    initScript: ctx.recipes.initramfsInit,
  });
  let vmlinuzDigest = await installShared(await readFile(kernel.vmlinuz), vmlinuzPath, ctx.dir);
  if (kernel.vmlinux)
    vmlinuzDigest = await installShared(await readFile(kernel.vmlinux), vmlinuxPath, ctx.dir);
  const initramfsDigest = await installShared(initramfs, initramfsPath, ctx.dir);

  const staging = join(paths.tmp, `build-${image}-${process.pid}-${Date.now()}`);
  const tree = join(staging, 'tree');
  try {
    await mkdir(tree, { recursive: true });
    if (image === 'minimal') {
      progress.stage('userland (busybox)');
      await populateMinimal(tree, busybox);
    } else {
      progress.stage('userland (mmdebstrap)');
      await populateBase({
        root: tree,
        packages: parsePackageList(await readFile(ctx.recipes.basePackages, 'utf8')),
        customizeScript: ctx.recipes.baseCustomize,
        progress,
        cacheDir: ctx.cacheDir,
        userlandKey: inputsHash(inputs.base as Record<string, unknown>),
      });
    }
    progress.stage('runtime + envd');
    await installRuntime({ root: tree, runtime, busybox, guestInit: ctx.recipes.guestInit });

    progress.stage('mkfs.ext4');
    const rootfsPath = join(staging, ROOTFS_FILE);
    const asRoot = process.getuid?.() === 0;
    await makeExt4({
      tree,
      out: rootfsPath,
      label: `wrenn-${image}`,
      // Without root the tree is owned by the builder: give the image its real owners.
      owners: asRoot ? undefined : await ownersForUnprivileged(tree),
    });
    await rm(tree, { recursive: true, force: true });

    progress.stage('envd snapshot (boots the image once under TCG)');
    await buildEnvdSnapshot({
      kernel: join(ctx.dir, vmlinuzDigest.path),
      initrd: initramfsPath,
      rootfs: rootfsPath,
      cmdline: DEFAULT_CMDLINE,
    });

    const rootfsBytes = (await stat(rootfsPath)).size;
    progress.stage('hash rootfs', rootfsBytes);
    const rootfs: FileDigest = {
      path: ROOTFS_FILE,
      bytes: rootfsBytes,
      sha256: await sha256File(rootfsPath, (n) => progress.advance(n)),
    };
    const manifest: ImageManifest = {
      format: MANIFEST_FORMAT,
      name: image,
      team: SYSTEM_TEAM,
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - started,
      inputsHash: wantHash,
      inputs,
      kernel: {
        release,
        package: kernelPkg.name,
        version: kernelPkg.version,
        cmdline: DEFAULT_CMDLINE,
        vmlinuz: vmlinuzDigest,
        initramfs: initramfsDigest,
      },
      rootfs,
      guest: { envdPort: ENVD_PORT, user: 'user', init: '/opt/wrenn/init' },
    };
    await writeManifest(staging, manifest);

    progress.stage('install image');
    await swapInto(staging, imageDir);
    progress.done(
      `wrenn: built image ${image} (${reason}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    return { status: 'built', reason, manifest, imageDir };
  } catch (e) {
    progress.done();
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/** Inputs of `base` beyond the common ones: package list, hook, apt sources, mmdebstrap. */
async function baseInputs(recipes: RecipeFiles) {
  const sources: Record<string, string> = {};
  for (const f of await hostAptSources()) sources[f] = await sha256File(f);
  const mmdebstrap = await run(TOOLS.mmdebstrap, await requireTool(TOOLS.mmdebstrap), [
    '--version',
  ]);
  return {
    packages: parsePackageList(await readFile(recipes.basePackages, 'utf8')),
    customize: await sha256File(recipes.baseCustomize),
    aptSources: sources,
    mmdebstrap: mmdebstrap.stdout.trim(),
  };
}

/** Write a shared kernel file only when its bytes differ (atomically: VMs may be booting). */
async function installShared(data: Buffer, path: string, dir: string): Promise<FileDigest> {
  const digest = sha256(data);
  if ((await hashIfExists(path)) !== digest) await writeFileAtomic(path, data);
  return { path: path.slice(dir.length + 1), bytes: data.length, sha256: digest };
}

/**
 * Replace `imageDir` with the finished `staging` dir: the old one is renamed aside first
 * (rename cannot replace a non-empty directory), then deleted.
 */
async function swapInto(staging: string, imageDir: string) {
  const trash = `${staging}.trash`;
  const hadOld = await pathExists(imageDir);
  if (hadOld) await rename(imageDir, trash);
  try {
    await rename(staging, imageDir);
  } catch (e) {
    if (hadOld) await rename(trash, imageDir);
    throw e;
  }
  await rm(trash, { recursive: true, force: true });
}

/** Build dirs left by a killed build (we hold the lock, so none is in progress). */
async function sweepStaleBuilds(tmp: string) {
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    if (name.startsWith('build-')) await rm(join(tmp, name), { recursive: true, force: true });
  }
}

async function ownersForUnprivileged(tree: string) {
  const owners: { path: string; uid: number; gid: number }[] = [];
  const walk = async (rel: string) => {
    for (const e of await readdir(join(tree, rel), { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      const user = r === '/home/user' || r.startsWith('/home/user/');
      owners.push({ path: r, uid: user ? USER_UID : 0, gid: user ? USER_GID : 0 });
      if (e.isDirectory()) await walk(r);
    }
  };
  owners.push({ path: '/', uid: 0, gid: 0 });
  await walk('');
  return owners;
}

const sizeOf = (p: string) =>
  stat(p).then(
    (s) => s.size,
    () => undefined,
  );
const hashIfExists = (p: string) => sha256FileMemo(p).catch(() => undefined);
