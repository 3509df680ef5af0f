import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { probeAccelerator } from '@wrenn/agent/vmm/qemu/probe.ts';
import { errorMessage, layout, wrennDir } from '@wrenn/common';
import { quietProgress } from '@wrenn/images';
import { ensureKernel, resolveKernelPackage } from '@wrenn/images/kernel.ts';
import { qemuVersion } from '@wrenn/images/qemu.ts';
import type { Command } from 'commander';
import { output, printTable } from '../output.ts';

const execFileP = promisify(execFile);

/**
 * One finding. `fatal` means Wrenn cannot run here (the only thing that makes `doctor`
 * exit non-zero); `warn` means a feature is unavailable (root networking, base image).
 */
interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fatal';
  value: string;
  hint?: string;
}

/** Below this, image builds and sandboxes fail: Wrenn cannot run. */
const MIN_FREE_BYTES = 2 << 30;
/** Below this, the base image and a few sandboxes may not fit. */
const LOW_FREE_BYTES = 10 << 30;

const succeeds = (cmd: string, args: string[]) =>
  execFileP(cmd, args, { timeout: 10_000 }).then(
    (r) => r.stdout.trim() || 'ok',
    () => undefined,
  );

async function checkQemu(checks: Check[]): Promise<boolean> {
  const version = await qemuVersion().catch(() => undefined);
  checks.push(
    version
      ? { name: 'qemu', status: 'ok', value: version }
      : {
          name: 'qemu',
          status: 'fatal',
          value: 'missing',
          hint: 'apt-get install qemu-system-x86',
        },
  );
  const img = await succeeds('qemu-img', ['--version']);
  checks.push(
    img
      ? {
          name: 'qemu-img',
          status: 'ok',
          value: img.split('\n')[0]!.replace(/^qemu-img version /, ''),
        }
      : { name: 'qemu-img', status: 'fatal', value: 'missing', hint: 'apt-get install qemu-utils' },
  );
  return !!version;
}

/** A kernel for the KVM probe: the one images were built with, else fetched into the cache. */
async function probeKernel(dir: string): Promise<string> {
  const kdir = layout(dir).kernels;
  const built = (await readdir(kdir).catch(() => [] as string[])).find((n) =>
    n.startsWith('vmlinuz-'),
  );
  if (built) return join(kdir, built);
  const kernel = await ensureKernel(await resolveKernelPackage(), layout(dir).cache, quietProgress);
  return kernel.vmlinuz;
}

async function checkAccelerator(
  checks: Check[],
  dir: string,
  qemuOk: boolean,
): Promise<string | undefined> {
  if (!qemuOk) return undefined;
  try {
    const v = await probeAccelerator({ dir, kernel: await probeKernel(dir) });
    checks.push({
      name: 'kvm',
      status: v.kvmWorks ? 'ok' : 'warn',
      value: `${v.kvmWorks ? 'works' : 'unusable'}: ${v.reason}${v.cached ? ' (cached verdict)' : ''}`,
      ...(v.kvmWorks
        ? {}
        : { hint: 'sandboxes run under TCG emulation: slower, but everything works' }),
    });
    checks.push({ name: 'accelerator', status: 'ok', value: v.accelerator });
    return v.accelerator;
  } catch (e) {
    checks.push({ name: 'kvm', status: 'warn', value: `probe failed: ${errorMessage(e)}` });
    checks.push({ name: 'accelerator', status: 'ok', value: 'tcg' });
    return 'tcg';
  }
}

async function checkDisk(checks: Check[], dir: string) {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (e) {
    checks.push({
      name: 'wrenn dir',
      status: 'fatal',
      value: `${dir} is not writable: ${errorMessage(e)}`,
    });
    return;
  }
  const s = await statfs(dir);
  const free = s.bavail * s.bsize;
  const gib = (free / (1 << 30)).toFixed(1);
  checks.push({
    name: 'disk free',
    status: free < MIN_FREE_BYTES ? 'fatal' : free < LOW_FREE_BYTES ? 'warn' : 'ok',
    value: `${gib} GiB under ${dir}`,
    ...(free < LOW_FREE_BYTES ? { hint: 'free space or point --dir/WRENN_DIR elsewhere' } : {}),
  });
}

async function checkPrivileges(checks: Check[]) {
  const root = process.getuid?.() === 0;
  checks.push({
    name: 'root',
    status: root ? 'ok' : 'warn',
    value: root ? 'yes' : 'no',
    ...(root ? {} : { hint: 'without root: user-mode networking only, and no base image build' }),
  });
  // A real network namespace, not just the `ip` binary: it needs CAP_SYS_ADMIN.
  const netns = await succeeds('unshare', ['--net', 'true']);
  checks.push(
    netns
      ? { name: 'netns', status: 'ok', value: 'available' }
      : {
          name: 'netns',
          status: 'warn',
          value: 'unavailable',
          hint: 'per-sandbox network namespaces need root',
        },
  );
  const nft = await succeeds('nft', ['--version']);
  const nftWorks = nft && root ? await succeeds('nft', ['list', 'tables']) : undefined;
  checks.push(
    !nft
      ? { name: 'nftables', status: 'warn', value: 'missing', hint: 'apt-get install nftables' }
      : nftWorks !== undefined
        ? { name: 'nftables', status: 'ok', value: nft }
        : { name: 'nftables', status: 'warn', value: `${nft} (not usable without root)` },
  );
}

async function checkImageTools(checks: Check[]) {
  const tools: [string, string][] = [
    ['busybox', 'busybox-static'],
    ['mkfs.ext4', 'e2fsprogs'],
    ['mmdebstrap', 'mmdebstrap'],
    ['dpkg-deb', 'dpkg'],
  ];
  const missing: string[] = [];
  for (const [cmd, pkg] of tools) {
    const found = await succeeds('sh', [
      '-c',
      `command -v ${cmd} || test -x /usr/sbin/${cmd} || test -x /sbin/${cmd}`,
    ]);
    if (!found) missing.push(pkg);
  }
  checks.push(
    missing.length
      ? {
          name: 'image tools',
          status: 'warn',
          value: `missing: ${missing.join(', ')}`,
          hint: `apt-get install ${missing.join(' ')}`,
        }
      : { name: 'image tools', status: 'ok', value: 'busybox, mkfs.ext4, mmdebstrap, dpkg-deb' },
  );
}

/** `wrenn doctor`: can this machine run Wrenn, and how (KVM or TCG)? */
export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this machine: QEMU, KVM (probed), disk, root, netns, nftables')
    .option('--json', 'machine-readable output', false)
    .action(async (o: { json: boolean }, cmd: Command) => {
      const dir = wrennDir(cmd.optsWithGlobals().dir);
      const checks: Check[] = [{ name: 'node', status: 'ok', value: process.version }];
      const qemuOk = await checkQemu(checks);
      await checkDisk(checks, dir);
      const accelerator = await checkAccelerator(checks, dir, qemuOk);
      await checkPrivileges(checks);
      await checkImageTools(checks);
      const canRun = !checks.some((c) => c.status === 'fatal');
      output(o.json, { canRun, accelerator, dir, checks }, () => {
        printTable(
          checks.map((c) => ({
            check: c.name,
            status: c.status,
            value: c.value,
            hint: c.hint ?? '',
          })),
          ['check', 'status', 'value', 'hint'],
        );
        process.stdout.write(
          canRun
            ? `wrenn can run here (accelerator: ${accelerator})\n`
            : 'wrenn cannot run here: fix the fatal checks above\n',
        );
      });
      if (!canRun) process.exitCode = 1;
    });
}
