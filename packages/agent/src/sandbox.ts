import { ConnTracker } from './conn-tracker.ts';
import { Lock } from './lock.ts';
import type { VmRef } from './vmm/driver.ts';

export type SandboxStatus =
  | 'starting'
  | 'running'
  | 'pausing'
  | 'paused'
  | 'resuming'
  | 'stopping'
  | 'stopped'
  | 'error';

export type TimeoutAction = 'kill' | 'pause';

/** What the control plane chose for a sandbox; persisted in sandbox.json and the meta. */
export interface SandboxSpec {
  id: string;
  teamId: string;
  templateId: string;
  vcpus: number;
  memoryMb: number;
  diskMb: number;
  /** 0 = no timeout. */
  timeoutMs: number;
  timeoutAction: TimeoutAction;
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  envdAccessToken: string;
  /** Epoch ms. */
  createdAt: number;
}

/**
 * One sandbox in the manager's map (the truth for what runs on this host).
 *
 * INVARIANT: `vm` is set iff a VMM process of this sandbox is believed alive.
 * INVARIANT: `baseImage` is set iff this sandbox holds a reference on it (RefCounts);
 *            a paused sandbox never does — it owns only its slot.
 * INVARIANT: `slot` is held in the SlotAllocator for as long as the sandbox is in the map.
 */
export interface Sandbox extends SandboxSpec {
  status: SandboxStatus;
  slot: number;
  /** Epoch ms of the last start or resume. */
  startedAt: number;
  /** Epoch ms when the TTL reaper acts; 0 = never. Meaningless while paused. */
  endAt: number;
  /** While paused: timeout left when it was paused (paused time does not count). */
  remainingMs: number;
  error?: string;
  vm?: VmRef;
  baseImage?: string;
  /** Guest port → host port forwards made for the proxy (envd's is fixed by the slot). */
  forwards: Map<number, number>;
  readonly conns: ConnTracker;
  readonly lock: Lock;
}

export function newSandbox(spec: SandboxSpec, slot: number, status: SandboxStatus): Sandbox {
  return {
    ...spec,
    status,
    slot,
    startedAt: 0,
    endAt: 0,
    remainingMs: 0,
    forwards: new Map(),
    conns: new ConnTracker(),
    lock: new Lock(),
  };
}

export const ENVD_PORT = 49983;
