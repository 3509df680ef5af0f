import { isValidId, type Logger, WrennError } from '@wrenn/common';
import { RefCounts } from './refcounts.ts';
import type { Sandbox, SandboxStatus } from './sandbox.ts';
import { SlotAllocator } from './slots.ts';
import type { VmmDriver } from './vmm/driver.ts';

/**
 * Builds a template snapshot of an image into `outDir` (a staging dir the caller renames):
 * boots it once, waits for envd, saves it, stops the VM. The snapshot holds `disk` (a
 * qcow2 over `rootfs`, the disk its RAM's page cache belongs to). Provided by the VMM
 * driver package; without one, templates cold-boot.
 */
export type TemplateSnapshotBuilder = (args: {
  rootfs: string;
  kernel: string;
  initrd: string;
  cmdline?: string;
  vcpus: number;
  memoryMb: number;
  outDir: string;
}) => Promise<{ disk: string }>;

export interface ManagerOptions {
  dir: string;
  driver: VmmDriver;
  log: Logger;
  maxSlots?: number;
  portBase?: number;
  /** Host capacity for admission and heartbeats. */
  capacity?: { vcpus: number; memoryMb: number; diskMb: number };
  accelerator?: string;
  templateSnapshotBuilder?: TemplateSnapshotBuilder;
  /** Bound for envd to answer /health after a start or resume. */
  envdReadyTimeoutMs?: number;
  /** Bound for in-flight proxied requests to finish before a pause aborts them. */
  drainTimeoutMs?: number;
  /** Extra kernel command line for every VM. */
  cmdline?: string;
}

/** Limits for one sandbox; out of range → invalid_argument. */
export const LIMITS = {
  vcpus: { min: 1, max: 8, default: 1 },
  memoryMb: { min: 128, max: 16384, default: 512 },
  diskMb: { min: 0, max: 1024 * 1024, default: 0 },
  timeoutSeconds: { max: 30 * 24 * 3600 },
};

/** `v` if it is an integer in min..max, else invalid_argument naming the field. */
export function inRange(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new WrennError('invalid_argument', `${name} ${v} is out of range ${min}..${max}`);
  }
  return v;
}

/**
 * The sandbox manager: the in-memory map (the truth for what runs on this host), the slot
 * allocator, base-image reference counts, and a per-sandbox lifecycle lock on each entry.
 * The lifecycle verbs live one per file under lifecycle/ and take the manager.
 *
 * INVARIANT: every sandbox in the map holds its slot; every slot held belongs to exactly
 * one sandbox in the map (or to a create in progress).
 */
export class Manager {
  readonly dir: string;
  readonly driver: VmmDriver;
  readonly log: Logger;
  readonly slots: SlotAllocator;
  readonly baseRefs = new RefCounts();
  readonly boxes = new Map<string, Sandbox>();
  readonly capacity: { vcpus: number; memoryMb: number; diskMb: number };
  readonly accelerator: string;
  readonly templateSnapshotBuilder?: TemplateSnapshotBuilder;
  readonly envdReadyTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly cmdline?: string;
  /** IDs the TTL reaper paused since the last List. */
  autoPaused: string[] = [];
  /** Set at shutdown: new lifecycle work is refused. */
  closing = false;
  /** Template snapshot builds in progress, one per template. */
  readonly templateBuilds = new Map<string, Promise<void>>();

  constructor(opts: ManagerOptions) {
    this.dir = opts.dir;
    this.driver = opts.driver;
    this.log = opts.log;
    this.slots = new SlotAllocator(opts.maxSlots ?? 64, opts.portBase ?? defaultPortBase(opts.dir));
    this.capacity = opts.capacity ?? { vcpus: 2, memoryMb: 4096, diskMb: 20_000 };
    this.accelerator = opts.accelerator ?? 'tcg';
    this.templateSnapshotBuilder = opts.templateSnapshotBuilder;
    this.envdReadyTimeoutMs = opts.envdReadyTimeoutMs ?? 120_000;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 5_000;
    this.cmdline = opts.cmdline;
  }

  get(id: string): Sandbox {
    if (!isValidId(id))
      throw new WrennError('invalid_argument', `bad sandbox id ${JSON.stringify(id)}`);
    const sb = this.boxes.get(id);
    if (!sb) throw new WrennError('not_found', `sandbox ${id} not found`);
    return sb;
  }

  /** Throws failed_precondition unless the sandbox is in one of `allowed`. */
  expectStatus(sb: Sandbox, verb: string, ...allowed: SandboxStatus[]): void {
    if (!allowed.includes(sb.status)) {
      throw new WrennError(
        'failed_precondition',
        `cannot ${verb} sandbox ${sb.id}: it is ${sb.status}`,
      );
    }
  }

  refuseWhenClosing(): void {
    if (this.closing) throw new WrennError('unavailable', 'the agent is shutting down');
  }

  /** Shutdown's own pauses (and the reaper's) pass `internal`. */
  refuseWhenClosingUnless(internal: boolean): void {
    if (!internal) this.refuseWhenClosing();
  }

  load() {
    let vcpusUsed = 0;
    let memoryUsedMb = 0;
    let diskUsedMb = 0;
    let sandboxesRunning = 0;
    let sandboxesPaused = 0;
    for (const sb of this.boxes.values()) {
      if (sb.status === 'paused') {
        sandboxesPaused++;
        diskUsedMb += sb.diskMb;
        continue;
      }
      if (sb.status === 'stopped' || sb.status === 'error') continue;
      sandboxesRunning++;
      vcpusUsed += sb.vcpus;
      memoryUsedMb += sb.memoryMb;
      diskUsedMb += sb.diskMb;
    }
    return { vcpusUsed, memoryUsedMb, diskUsedMb, sandboxesRunning, sandboxesPaused };
  }
}

/**
 * Slot ports of two agents on one machine (separate WRENN_DIRs) must not collide: the
 * default port base is derived from the dir. The range stays below Linux's ephemeral
 * ports (32768+), which any outgoing connection may hold when QEMU binds. The allocator
 * also skips ports in use.
 */
export function defaultPortBase(dir: string): number {
  let h = 2166136261;
  for (const c of dir) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return 20_000 + (h % 98) * 128; // 20000..32416, + up to 64 slots + 1 build port < 32768
}
