import { ENVD_VERSION } from '@wrenn/envd/config.ts';
import type { SandboxStatus } from '../db/schema.ts';
import type { SandboxView } from '../services/sandbox-view.ts';

/**
 * Reported to the SDK as `envdVersion`. The SDK gates features on it (recursive watch
 * 0.1.4, metrics 0.1.5, stdin control 0.3.0, closeStdin 0.5.2, octet-stream upload 0.5.7,
 * file metadata 0.6.2, watch includeEntry 0.6.3, network-mount watch 0.6.4), so it is the
 * version the in-guest envd itself reports on /health, which implements all of them.
 */
export const E2B_ENVD_VERSION = ENVD_VERSION;

/** E2B's API answers this constant client id; the SDK does not interpret it. */
export const E2B_CLIENT_ID = '6532622b';

export type E2bState = 'running' | 'paused';

/**
 * E2B knows two states. A sandbox in a transient status is reported as the state it is
 * heading to or coming from while it still holds a VM: pausing → paused (it is about to be
 * unreachable), starting/resuming/stopping → running.
 */
export function e2bState(status: SandboxStatus): E2bState {
  return status === 'paused' || status === 'pausing' ? 'paused' : 'running';
}

/** Wrenn statuses an E2B `state` filter selects; `stopped` is never listed. */
export const STATUSES_BY_STATE: Record<E2bState, SandboxStatus[]> = {
  running: ['starting', 'running', 'resuming', 'stopping'],
  paused: ['pausing', 'paused'],
};

export interface E2bEdge {
  /** `<port>-<id>.<domain>` host routing, when the operator configured it. */
  domain: string | null;
}

export function sandboxOut(v: SandboxView, edge: E2bEdge) {
  return {
    templateID: v.templateId,
    sandboxID: v.sandboxId,
    alias: v.templateId,
    clientID: E2B_CLIENT_ID,
    envdVersion: E2B_ENVD_VERSION,
    envdAccessToken: v.envdAccessToken,
    domain: edge.domain,
  };
}

/**
 * `endAt` must be a date for the SDK (`new Date(endAt)`). Wrenn has none while paused (the
 * clock stops) or with timeout 0; then the sandbox's start is reported, documented in
 * docs/e2b.md.
 */
export function listedOut(v: SandboxView) {
  const startedAt = v.startedAt ?? v.createdAt;
  return {
    templateID: v.templateId,
    alias: v.templateId,
    sandboxID: v.sandboxId,
    clientID: E2B_CLIENT_ID,
    startedAt,
    endAt: v.endAt ?? startedAt,
    cpuCount: v.vcpus,
    memoryMB: v.memoryMb,
    diskSizeMB: v.diskMb,
    metadata: v.metadata,
    state: e2bState(v.status),
    envdVersion: E2B_ENVD_VERSION,
    volumeMounts: [] as unknown[],
  };
}

export function detailOut(v: SandboxView, edge: E2bEdge) {
  return {
    ...listedOut(v),
    envdAccessToken: v.envdAccessToken,
    domain: edge.domain,
    // Embedded mode's user-mode networking has no egress policy: sandboxes reach the internet.
    allowInternetAccess: true,
    lifecycle: { onTimeout: v.lifecycle.onTimeout, autoResume: v.lifecycle.autoResume },
  };
}

/**
 * The SDK sends the metadata filter as a query value that is itself a query string whose
 * keys and values were URL-encoded once more (`encodeURIComponent` then URLSearchParams).
 */
export function parseMetadataFilter(raw: string | undefined): Record<string, string> | undefined {
  if (!raw) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(raw)) out[safeDecode(k)] = safeDecode(v);
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
