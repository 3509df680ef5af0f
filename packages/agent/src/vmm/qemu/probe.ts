import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { layout, writeFileAtomic } from '@wrenn/common';
import { qemuVersion } from '@wrenn/images/qemu.ts';
import { type Accelerator, QEMU_BINARY, qemuArgs } from './args.ts';

/**
 * Decides between KVM and TCG by really booting a kernel under KVM: `/dev/kvm` can exist
 * and still be unusable (on this machine kind stock kernels hang under nested PVM, or QEMU
 * aborts setting MSRs). The verdict is cached per host kernel and QEMU version.
 */
export interface AcceleratorVerdict {
  accelerator: Accelerator;
  kvmDevice: boolean;
  kvmWorks: boolean;
  reason: string;
  qemuVersion: string;
  hostKernel: string;
  cached: boolean;
}

// The guest kernel got far enough to run its own code: any of these lines proves KVM works.
const BOOTED_MARKERS = [/Unable to mount root fs/, /Run \/init as init process/, /Kernel panic/];

export interface ProbeOptions {
  dir: string;
  /** A kernel that prints to ttyS0 (the guest kernel Wrenn boots). */
  kernel: string;
  timeoutMs?: number;
  /** Ignore a cached verdict. */
  force?: boolean;
}

export async function probeAccelerator(opts: ProbeOptions): Promise<AcceleratorVerdict> {
  const forced = process.env.WRENN_ACCEL;
  const version = await qemuVersion();
  const hostKernel = release();
  const kvmDevice = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  if (forced === 'tcg' || forced === 'kvm') {
    return {
      accelerator: forced,
      kvmDevice,
      kvmWorks: forced === 'kvm',
      reason: `forced by WRENN_ACCEL=${forced}`,
      qemuVersion: version,
      hostKernel,
      cached: false,
    };
  }

  const cacheDir = layout(opts.dir).cache;
  const cacheFile = join(cacheDir, 'accelerator.json');
  const key = `${hostKernel}|${version}`;
  if (!opts.force) {
    const cached = await readFile(cacheFile, 'utf8').then(
      (s) => JSON.parse(s) as AcceleratorVerdict & { key: string },
      () => undefined,
    );
    if (cached && cached.key === key) {
      const { key: _key, ...rest } = cached;
      return { ...rest, cached: true };
    }
  }

  let verdict: Omit<AcceleratorVerdict, 'cached'>;
  if (!kvmDevice) {
    verdict = {
      accelerator: 'tcg',
      kvmDevice,
      kvmWorks: false,
      reason: '/dev/kvm is missing or not accessible',
      qemuVersion: version,
      hostKernel,
    };
  } else {
    const result = await bootUnderKvm(opts.kernel, opts.timeoutMs ?? 15_000);
    verdict = {
      accelerator: result.ok ? 'kvm' : 'tcg',
      kvmDevice,
      kvmWorks: result.ok,
      reason: result.reason,
      qemuVersion: version,
      hostKernel,
    };
  }
  await mkdir(cacheDir, { recursive: true });
  await writeFileAtomic(cacheFile, JSON.stringify({ ...verdict, key }, null, 2));
  return { ...verdict, cached: false };
}

/** Boots `kernel` with no disk under KVM; success = the kernel printed that it booted. */
function bootUnderKvm(kernel: string, timeoutMs: number): Promise<{ ok: boolean; reason: string }> {
  const args = qemuArgs({
    name: 'wrenn-kvm-probe',
    accel: 'kvm',
    vcpus: 1,
    memoryMb: 128,
    kernel,
    cmdline: 'console=ttyS0 panic=-1',
    console: { kind: 'stdio' },
  });
  return new Promise((resolve) => {
    const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let done = false;
    const finish = (ok: boolean, reason: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve({ ok, reason });
    };
    const timer = setTimeout(
      () => finish(false, `a probe VM did not boot under KVM within ${timeoutMs} ms`),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      output = (output + d.toString()).slice(-8192);
      if (BOOTED_MARKERS.some((m) => m.test(output))) finish(true, 'a probe VM booted under KVM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => finish(false, `could not start ${QEMU_BINARY}: ${e.message}`));
    child.on('exit', (code, signal) => {
      const last = output.trim().split('\n').slice(-1)[0] ?? '';
      finish(false, `QEMU exited under KVM (${signal ?? `code ${code}`}): ${last}`);
    });
  });
}
