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
 * QEMU exit instead of a hang.
 */
export const DEFAULT_CMDLINE = 'console=ttyS0 quiet panic=-1 reboot=t rw';
