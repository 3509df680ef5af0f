import { createServer } from 'node:net';
import { WrennError } from '@wrenn/common';

/**
 * Slots are the host-side identity of a sandbox: slot `n` fixes its envd host port
 * (`portBase + n`), its MAC address and, with TAP networking, its addresses. Slot 0 means
 * "no slot" (a meta without one is corrupt), so indexes run 1..maxSlots.
 *
 * INVARIANT: a slot index is held by at most one sandbox, running or paused. A paused
 * sandbox keeps its slot so it resumes with the same identity.
 */
export class SlotAllocator {
  private readonly held = new Set<number>();

  constructor(
    readonly maxSlots: number,
    readonly portBase: number,
  ) {}

  envdPort(slot: number): number {
    return this.portBase + slot;
  }

  mac(slot: number): string {
    return `52:54:00:77:${((slot >> 8) & 0xff).toString(16).padStart(2, '0')}:${(slot & 0xff).toString(16).padStart(2, '0')}`;
  }

  isHeld(slot: number): boolean {
    return this.held.has(slot);
  }

  get used(): number {
    return this.held.size;
  }

  /**
   * Take the lowest free slot whose port is free on the host (another program or another
   * agent may use it). Throws resource_exhausted when none is left.
   */
  async allocate(portFree: (port: number) => Promise<boolean> = isPortFree): Promise<number> {
    for (let i = 1; i <= this.maxSlots; i++) {
      if (this.held.has(i)) continue;
      this.held.add(i); // claim before the await so a concurrent allocate skips it
      if (await portFree(this.envdPort(i))) return i;
      this.held.delete(i);
    }
    throw new WrennError(
      'resource_exhausted',
      `no free slot on this host (${this.maxSlots} slots)`,
    );
  }

  /** Take a given slot (restoring a paused sandbox). */
  reserve(slot: number): void {
    if (!Number.isInteger(slot) || slot < 1 || slot > this.maxSlots) {
      throw new WrennError('invalid_argument', `slot ${slot} is outside 1..${this.maxSlots}`);
    }
    if (this.held.has(slot)) throw new WrennError('conflict', `slot ${slot} is already held`);
    this.held.add(slot);
  }

  release(slot: number): void {
    if (!this.held.delete(slot))
      throw new WrennError('internal', `release of slot ${slot} that is not held`);
  }
}

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}
