import { spawn } from 'node:child_process';
import { WrennError } from '@wrenn/common';
import { guestCmdline } from './cmdline.ts';
import { requireTool, TOOLS } from './exec.ts';
import { microvmArgs } from './qemu.ts';

/** Bumped when the way the snapshot is made changes (part of every image's inputs). */
export const ENVD_SNAPSHOT_FORMAT = 1;

/** What the guest init prints when it is done (images/guest/init, wrenn.envd-snapshot=build). */
const BUILT = 'wrenn-init: envd snapshot built';

/**
 * Make envd's V8 startup snapshot (`/opt/wrenn/envd/envd.blob`) inside the image: boot the
 * finished rootfs once under TCG with the sandbox CPU model, let the guest init run
 * `node --build-snapshot` on envd's CommonJS bundle, and wait for the VM to end. V8 accepts
 * a snapshot only on the CPU features it was made on, so it cannot be made on the host.
 * The guest remounts the root read-only before it ends, so the ext4 image stays clean.
 * Costs one boot plus the snapshot (~10 s on an idle 2-core box); every later boot of
 * the image saves about half of envd's start.
 */
export async function buildEnvdSnapshot(opts: {
  kernel: string;
  initrd: string;
  rootfs: string;
  cmdline: string;
  timeoutMs?: number;
}): Promise<void> {
  const qemu = await requireTool(TOOLS.qemu);
  const args = [
    // Same machine as a sandbox, minus the network.
    ...microvmArgs({ name: 'wrenn-image-build', accel: 'tcg', vcpus: 1, memoryMb: 512 }),
    '-kernel',
    opts.kernel,
    '-initrd',
    opts.initrd,
    '-append',
    guestCmdline(opts.cmdline, 'tcg', 'wrenn.envd-snapshot=build'),
    // Zero writes (ext4's lazy inode table init) stay holes: the image file stays sparse.
    '-drive',
    `id=root,file=${opts.rootfs},format=raw,if=none,cache=unsafe,discard=unmap,detect-zeroes=unmap`,
    '-device',
    'virtio-blk-device,drive=root',
    '-serial',
    'stdio',
  ];
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const child = spawn(qemu, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  }).finally(() => clearTimeout(timer));
  if (out.includes(BUILT) && code === 0) return;
  const lines = `${out}\n${err}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const why =
    lines.find((l) => /wrenn-init: envd snapshot FAILED|wrenn-initramfs: FATAL/.test(l)) ??
    lines.at(-1) ??
    `QEMU exited with ${code}`;
  throw new WrennError(
    'internal',
    `building envd's startup snapshot in a TCG VM failed${child.killed ? ` (no end within ${timeoutMs / 1000} s)` : ''}: ${why}`,
  );
}
