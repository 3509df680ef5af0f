import { microvmArgs, QEMU_BINARY } from '@wrenn/images/qemu.ts';

/**
 * The one place that turns a sandbox's description into a QEMU command line: the machine
 * head shared with the image build (@wrenn/images microvmArgs), then virtio-mmio devices.
 * Everything else describes VMs with `QemuVmSpec`.
 */
export { QEMU_BINARY };

export type Accelerator = 'kvm' | 'tcg';

export interface HostForward {
  hostPort: number;
  guestPort: number;
  /** Host address to bind; loopback unless told otherwise. */
  hostAddr?: string;
}

export type QemuNet =
  | { mode: 'user'; forwards: HostForward[]; mac?: string }
  | { mode: 'tap'; ifname: string; mac: string }
  | { mode: 'none' };

export type QemuConsole = { kind: 'file'; path: string } | { kind: 'stdio' } | { kind: 'none' };

export interface QemuVmSpec {
  name?: string;
  accel: Accelerator;
  vcpus: number;
  memoryMb: number;
  kernel: string;
  initrd?: string;
  cmdline: string;
  rootDisk?: { path: string; format: 'raw' | 'qcow2'; readOnly?: boolean };
  net?: QemuNet;
  /**
   * Guest RAM in a file. `share: true` writes guest pages to the file (template build:
   * with the `x-ignore-shared` migration capability, RAM is not copied into the state
   * file); `share: false` maps it privately, copy-on-write (clones of a template).
   */
  memoryFile?: { path: string; share: boolean };
  /**
   * Anonymous guest RAM under the same backend id as `memoryFile`: the RAM block has the
   * same name either way, so a VM whose RAM was a file migrates into one whose RAM is not
   * (a pause snapshot of a template clone restores without the template's file).
   */
  ramBackend?: boolean;
  console?: QemuConsole;
  qmpSocket?: string;
  pidFile?: string;
  /** Detach from the caller (own session) so the VM outlives it. */
  daemonize?: boolean;
  /** `defer` waits for `migrate-incoming` over QMP; a URI restores from it directly. */
  incoming?: string;
  /** Start with vCPUs stopped (`-S`). */
  paused?: boolean;
}

const MEMORY_BACKEND_ID = 'wrenn-ram';

export function qemuArgs(spec: QemuVmSpec): string[] {
  const args = [
    ...microvmArgs({
      name: spec.name ?? 'wrenn',
      accel: spec.accel,
      vcpus: spec.vcpus,
      memoryMb: spec.memoryMb,
      ...(spec.memoryFile || spec.ramBackend
        ? { machineExtra: `memory-backend=${MEMORY_BACKEND_ID}` }
        : {}),
    }),
    '-kernel',
    spec.kernel,
    '-append',
    spec.cmdline,
  ];
  if (spec.initrd) args.push('-initrd', spec.initrd);

  if (spec.memoryFile) {
    args.push(
      '-object',
      `memory-backend-file,id=${MEMORY_BACKEND_ID},size=${spec.memoryMb}M,mem-path=${spec.memoryFile.path},share=${spec.memoryFile.share ? 'on' : 'off'}`,
    );
  } else if (spec.ramBackend) {
    args.push('-object', `memory-backend-ram,id=${MEMORY_BACKEND_ID},size=${spec.memoryMb}M`);
  }

  if (spec.rootDisk) {
    const ro = spec.rootDisk.readOnly ? ',read-only=on' : '';
    args.push(
      '-drive',
      `id=root,file=${spec.rootDisk.path},format=${spec.rootDisk.format},if=none,cache=unsafe,discard=unmap${ro}`,
      '-device',
      'virtio-blk-device,drive=root',
    );
  }

  const net = spec.net ?? { mode: 'none' };
  if (net.mode === 'user') {
    const fwd = net.forwards
      .map((f) => `,hostfwd=tcp:${f.hostAddr ?? '127.0.0.1'}:${f.hostPort}-:${f.guestPort}`)
      .join('');
    args.push('-netdev', `user,id=net0,net=10.0.2.0/24${fwd}`);
    args.push('-device', `virtio-net-device,netdev=net0${net.mac ? `,mac=${net.mac}` : ''}`);
  } else if (net.mode === 'tap') {
    args.push('-netdev', `tap,id=net0,ifname=${net.ifname},script=no,downscript=no`);
    args.push('-device', `virtio-net-device,netdev=net0,mac=${net.mac}`);
  }

  const con = spec.console ?? { kind: 'none' };
  if (con.kind === 'file') args.push('-serial', `file:${con.path}`);
  else if (con.kind === 'stdio') args.push('-serial', 'stdio');
  else args.push('-serial', 'null');

  if (spec.qmpSocket) args.push('-qmp', `unix:${spec.qmpSocket},server=on,wait=off`);
  if (spec.pidFile) args.push('-pidfile', spec.pidFile);
  if (spec.daemonize) args.push('-daemonize');
  if (spec.incoming) args.push('-incoming', spec.incoming);
  if (spec.paused) args.push('-S');
  return args;
}
