/** The images Wrenn builds itself, owned by SYSTEM_TEAM. */
export const IMAGES = {
  minimal: {
    description: 'busybox userland + envd: the smallest image that boots to a ready sandbox',
    needsRoot: false,
  },
  base: {
    description: 'Debian minbase + bash, python3, git, sudo, curl, ca-certificates (E2B-like)',
    needsRoot: true,
  },
} as const;

export type ImageName = keyof typeof IMAGES;
export const IMAGE_NAMES = Object.keys(IMAGES) as ImageName[];

/** envd's port inside the guest (E2B's). */
export const ENVD_PORT = 49983;

/**
 * The kernel command line images are built for. `quiet` keeps the emulated serial port
 * (slow under TCG) nearly silent; panic=-1 and reboot=t (triple fault: microvm has no
 * keyboard controller or ACPI reset) with QEMU's -no-reboot turn a guest crash into a
 * QEMU exit instead of a hang. `cryptomgr.notests` skips the boot-time self-tests of every
 * crypto algorithm (~0.25 s of emulated CPU, the costliest initcall): they check the
 * kernel's own implementations, which no guest input reaches. `init_on_alloc=0` turns off
 * Debian's zeroing of every kernel allocation (~0.3 s of emulated CPU to envd ready): a
 * hardening of the guest kernel against leaking its own stale memory to guest processes,
 * i.e. the untrusted guest protecting itself from itself, never the host (which TCG/QEMU
 * isolates), so it buys a sandbox nothing.
 */
export const DEFAULT_CMDLINE =
  'console=ttyS0 quiet panic=-1 reboot=t rw cryptomgr.notests init_on_alloc=0';
