import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { newId, WrennError } from '@wrenn/common';
import { createOverlay } from '../../disk.ts';
import type { SnapshotResult, VmRef, VmSpec } from '../driver.ts';
import { processName, type QemuDriver } from './driver.ts';
import { freeLoopbackPort, waitEnvdHealthy, warmEnvd } from './net.ts';
import { isOurQemu } from './process.ts';
import { SNAPSHOT_FILES } from './snapshot.ts';

export interface BuildTemplateOptions {
  /** The image's read-only base disk (raw ext4). */
  rootfs: string;
  kernel: string;
  initrd: string;
  /** The image's kernel command line (appended to the driver's defaults). */
  cmdline?: string;
  vcpus: number;
  memoryMb: number;
  /**
   * Where the snapshot goes (memory, vmstate, disk.qcow2, vmm.json). Pass a staging dir
   * and rename it into place: a half-built template must never be cloned.
   */
  snapshotDir: string;
  /** Budget for the cold boot to envd ready (default 300 s: TCG on a busy host). */
  readyTimeoutMs?: number;
}

export interface BuildTemplateResult extends SnapshotResult {
  /** Cold boot to envd /health → 204. */
  bootMs: number;
  /** Pause + save of the device state. */
  saveMs: number;
}

/**
 * Build a template snapshot of an image: boot it once with RAM in `snapshotDir/memory`
 * (shared file), wait for envd, stop it, save device state with x-ignore-shared, kill it.
 * Clones then start with `driver.start(spec, { kind: 'template', snapshotDir })` on an
 * overlay made by `createOverlay(join(snapshotDir, 'disk.qcow2'), 'qcow2', overlay)`.
 *
 * @example
 *   await buildTemplateSnapshot(driver, { rootfs, kernel, initrd, cmdline, vcpus: 1, memoryMb: 512, snapshotDir: staging });
 */
export async function buildTemplateSnapshot(
  driver: QemuDriver,
  opts: BuildTemplateOptions,
): Promise<BuildTemplateResult> {
  const dir = resolve(opts.snapshotDir);
  await mkdir(dir, { recursive: true });
  const disk = join(dir, SNAPSHOT_FILES.disk);
  // The build VM writes into disk.qcow2 (mount, envd's files): that disk, not the base,
  // is what the saved page cache describes, so it is part of the template.
  await createOverlay(opts.rootfs, 'raw', disk);
  const runDir = await mkdtemp(join(tmpdir(), 'wrenn-tplbuild-'));
  try {
    const spec: VmSpec = {
      vmId: `tpl-${newId(10)}`,
      runDir,
      vcpus: opts.vcpus,
      memoryMb: opts.memoryMb,
      kernel: opts.kernel,
      initrd: opts.initrd,
      overlay: disk,
      network: { kind: 'user', envdHostPort: await freeLoopbackPort() },
    };
    if (opts.cmdline) spec.cmdline = opts.cmdline;
    const timeoutMs = opts.readyTimeoutMs ?? 300_000;
    return await snapshotTemplate(driver, {
      spec,
      outDir: dir,
      ready: async (vm) => {
        await waitEnvdHealthy(vm.spec.network.envdHostPort, timeoutMs, {
          isDead: async () => !(await isOurQemu(vm.pid, processName(vm.vmId))),
        });
        await warmEnvd(vm.spec.network.envdHostPort);
      },
    });
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
}

/**
 * The core of a template build, for callers that prepare the disk and spec themselves
 * (the agent): boot `spec` cold with RAM in `outDir/memory` (shared), wait for `ready`,
 * stop, save as a template into `outDir`, kill. `spec.overlay` should live in `outDir`
 * (it becomes the template's disk); otherwise it is copied there as disk.qcow2.
 */
export async function snapshotTemplate(
  driver: QemuDriver,
  args: { spec: VmSpec; outDir: string; ready: (ref: VmRef) => Promise<void> },
): Promise<BuildTemplateResult> {
  const outDir = resolve(args.outDir);
  await mkdir(outDir, { recursive: true });
  const started = performance.now();
  const vm = await driver.startWithSharedMemory(args.spec, join(outDir, SNAPSHOT_FILES.memory));
  try {
    await args.ready(vm).catch((e) => {
      throw new WrennError(
        e instanceof WrennError ? e.code : 'internal',
        `template build: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    });
    const bootMs = performance.now() - started;
    const t = performance.now();
    await driver.pause(vm);
    const result = await driver.snapshotToDir(vm, outDir, 'template');
    return { ...result, bootMs, saveMs: performance.now() - t };
  } finally {
    await driver.kill(vm);
  }
}
