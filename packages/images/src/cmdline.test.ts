import { describe, expect, it } from 'vitest';
import { guestCmdline, hostCmdlineExtras, hostTscKhz } from './cmdline.ts';
import { parsePackageList } from './rootfs/base.ts';

const cpuinfo = 'processor\t: 0\ncpu MHz\t\t: 2596.128\nbogomips\t: 5192.25\n';

describe('kernel command line for this host', () => {
  it('derives the TSC frequency from bogomips', () => {
    expect(hostTscKhz(cpuinfo)).toBe(2596125);
    expect(hostTscKhz('processor: 0\n')).toBeUndefined();
  });
  it('tells a TCG guest its TSC frequency and a KVM guest nothing', () => {
    expect(hostCmdlineExtras('tcg', cpuinfo)).toBe('tsc_early_khz=2596125 tsc=reliable');
    expect(hostCmdlineExtras('kvm', cpuinfo)).toBe('');
    expect(guestCmdline('console=ttyS0 quiet', 'kvm', 'wrenn.ip=10.1.0.2/24')).toBe(
      'console=ttyS0 quiet wrenn.ip=10.1.0.2/24',
    );
  });
});

describe('package lists', () => {
  it('keeps one name per line and drops comments and blanks', () => {
    expect(parsePackageList('# header\nbash\n\n  git  # vcs\npython3\n')).toEqual([
      'bash',
      'git',
      'python3',
    ]);
  });
});
