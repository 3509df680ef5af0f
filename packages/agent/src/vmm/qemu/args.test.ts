import { describe, expect, it } from 'vitest';
import { qemuArgs } from './args.ts';

const base = {
  accel: 'tcg' as const,
  vcpus: 2,
  memoryMb: 512,
  kernel: '/k/vmlinuz',
  initrd: '/k/initrd',
  cmdline: 'console=ttyS0 quiet',
};

function valueAfter(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe('qemuArgs', () => {
  it('boots a microvm with the requested size and accelerator', () => {
    const args = qemuArgs(base);
    expect(valueAfter(args, '-M')[0]).toMatch(/^microvm,/);
    expect(valueAfter(args, '-accel')).toEqual(['tcg']);
    expect(valueAfter(args, '-cpu')).toEqual(['max']);
    expect(valueAfter(args, '-smp')).toEqual(['2']);
    expect(valueAfter(args, '-m')).toEqual(['512M']);
    expect(valueAfter(args, '-initrd')).toEqual(['/k/initrd']);
    expect(valueAfter(args, '-serial')).toEqual(['null']);
  });

  it('forwards host ports to loopback by default', () => {
    const args = qemuArgs({
      ...base,
      net: { mode: 'user', forwards: [{ hostPort: 40001, guestPort: 49983 }] },
    });
    expect(valueAfter(args, '-netdev')[0]).toContain('hostfwd=tcp:127.0.0.1:40001-:49983');
  });

  it('wires a file memory backend into the machine for template snapshots', () => {
    const args = qemuArgs({ ...base, memoryFile: { path: '/t/memory', share: true } });
    expect(valueAfter(args, '-M')[0]).toContain('memory-backend=wrenn-ram');
    expect(valueAfter(args, '-object')[0]).toBe(
      'memory-backend-file,id=wrenn-ram,size=512M,mem-path=/t/memory,share=on',
    );
  });

  it('adds QMP, pidfile, daemonize and deferred incoming for detached restores', () => {
    const args = qemuArgs({
      ...base,
      rootDisk: { path: '/s/rootfs.qcow2', format: 'qcow2' },
      qmpSocket: '/s/qmp.sock',
      pidFile: '/s/qemu.pid',
      daemonize: true,
      incoming: 'defer',
    });
    expect(valueAfter(args, '-qmp')).toEqual(['unix:/s/qmp.sock,server=on,wait=off']);
    expect(valueAfter(args, '-pidfile')).toEqual(['/s/qemu.pid']);
    expect(valueAfter(args, '-incoming')).toEqual(['defer']);
    expect(args).toContain('-daemonize');
    expect(valueAfter(args, '-drive')[0]).toContain('format=qcow2');
  });
});
