import { createRequire } from 'node:module';
import { WrennError } from '@wrenn/common/errors.ts';

/** File name of the native addon buildEnvd compiles beside the bundle (see native-build.ts). */
export const CLOCK_ADDON = 'wrenn_clock.node';

let addon: { setClock(ms: number): void } | undefined;

/**
 * Load the addon (idempotent). /init calls it on every guest request, so the agent's warm-up
 * /init before a template snapshot leaves it loaded in every clone's memory.
 */
export function loadClockAddon(): { setClock(ms: number): void } {
  try {
    addon ??= createRequire(import.meta.url)(`./${CLOCK_ADDON}`) as typeof addon;
    return addon!;
  } catch (e) {
    throw new WrennError('internal', `loading ${CLOCK_ADDON} failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Set the guest's wall clock in-process (clock_settime through a tiny Node-API addon).
 * Spawning `date -s` instead forks all of envd: 0.3-1.7 s under TCG on every create/resume.
 * Guest mode only: the addon ships beside the bundle in /opt/wrenn/envd.
 */
export function setGuestClock(ms: number): void {
  const clock = loadClockAddon();
  try {
    clock.setClock(ms);
  } catch (e) {
    throw new WrennError('internal', `setting the guest clock failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
}
