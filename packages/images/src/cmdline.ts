import { readFileSync } from 'node:fs';

/**
 * Host TSC frequency in kHz, from /proc/cpuinfo's `bogomips` (the kernel derives it from
 * the TSC: bogomips = 2 × tsc MHz on x86). Undefined when the host does not say.
 */
export function hostTscKhz(cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')): number | undefined {
  const bogomips = Number(cpuinfo.match(/^bogomips\s*:\s*([\d.]+)/m)?.[1]);
  return Number.isFinite(bogomips) && bogomips > 0 ? Math.round((bogomips / 2) * 1000) : undefined;
}

/**
 * Kernel parameters a guest needs on this host beyond the image's own command line.
 *
 * Under TCG the guest's TSC is the host's TSC, but the kernel cannot calibrate it: the
 * emulated PIT is too irregular on a loaded host ("tsc: Unable to calibrate against PIT"),
 * microvm has no HPET/ACPI PM timer, and the boot then hangs with no clocksource. Telling
 * it the frequency (`tsc_early_khz`) skips calibration. Under KVM, kvm-clock is used.
 */
export function hostCmdlineExtras(accel: 'kvm' | 'tcg', cpuinfo?: string): string {
  if (accel !== 'tcg') return '';
  const khz = hostTscKhz(cpuinfo);
  return khz ? `tsc_early_khz=${khz} tsc=reliable` : '';
}

/** The full kernel command line for booting an image on this host. */
export function guestCmdline(imageCmdline: string, accel: 'kvm' | 'tcg', extra?: string): string {
  return [imageCmdline, hostCmdlineExtras(accel), extra].filter(Boolean).join(' ');
}
