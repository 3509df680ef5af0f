import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** The QEMU every Wrenn VM runs on (`WRENN_QEMU` overrides it). */
export const QEMU_BINARY = process.env.WRENN_QEMU ?? 'qemu-system-x86_64';

/**
 * The `-cpu` model of TCG guests. envd's V8 startup snapshot is made in a VM of this model
 * at image build and V8 refuses it on other CPU features, so the agent (vmm/qemu/args.ts)
 * must boot TCG sandboxes with the same one (a unit test checks it). `max` rather than a
 * smaller named model: node ran no faster on qemu64 (measured), and V8 uses what it finds.
 */
export const TCG_CPU_MODEL = 'max';

/**
 * The QEMU machine every Wrenn VM runs on (see microvmArgs): a microvm with virtio-mmio
 * devices. Debian's cloud kernel finds them
 * only through ACPI (no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES): with acpi=off the root disk
 * never appears.
 */
const MICROVM_MACHINE = 'microvm,x-option-roms=off,isa-serial=on,rtc=on,pcie=off,acpi=on';

const execFileP = promisify(execFile);

/** QEMU's version line (`QEMU emulator version 7.2.x (…)`): image builds record it. */
export async function qemuVersionLine(): Promise<string> {
  const { stdout } = await execFileP(QEMU_BINARY, ['--version']);
  return stdout.split('\n')[0]!.trim();
}

/** This QEMU's version number (`7.2.x`), e.g. for the KVM probe's cache. */
export async function qemuVersion(): Promise<string> {
  const line = await qemuVersionLine();
  return /version (\S+)/.exec(line)?.[1] ?? line;
}

/**
 * The head of every Wrenn VM's command line: the microvm machine (plus `machineExtra`), the
 * accelerator and its CPU model, vCPUs and RAM. Sandboxes (@wrenn/agent vmm/qemu/args.ts)
 * and the image build's snapshot VM (envd-snapshot.ts) add their devices after it.
 */
export function microvmArgs(vm: {
  name: string;
  accel: 'kvm' | 'tcg';
  vcpus: number;
  memoryMb: number;
  machineExtra?: string;
}): string[] {
  return [
    '-name',
    vm.name,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-M',
    vm.machineExtra ? `${MICROVM_MACHINE},${vm.machineExtra}` : MICROVM_MACHINE,
    '-accel',
    vm.accel,
    '-cpu',
    // TCG: the model envd's startup snapshot was made on at image build.
    vm.accel === 'kvm' ? 'host' : TCG_CPU_MODEL,
    '-smp',
    String(vm.vcpus),
    '-m',
    `${vm.memoryMb}M`,
  ];
}
