/** Everything a control plane can be told; `resolveConfig` fills defaults. */
export interface ControlPlaneConfig {
  /** WRENN_DIR: SQLite file, admin key. */
  dir: string;
  /** postgres://… for a shared deployment; unset = SQLite under `dir`. */
  databaseUrl?: string;
  host: string;
  port: number;
  /** URL clients use to reach this control plane (printed by `wrenn up`, used in docs). */
  publicUrl?: string;
  /** `<port>-<id>.<domain>` host routing for the gateway; unset = header routing only. */
  sandboxDomain?: string;
  /** Per API key token bucket. */
  rateLimit: { perSecond: number; burst: number };
  /** A host without a heartbeat for this long is unreachable and its sandboxes missing. */
  heartbeatTimeoutMs: number;
  reconcileIntervalMs: number;
  /** How long starting/pausing/resuming/stopping may last before the agent's view wins. */
  transientGraceMs: number;
  registrationTokenTtlMs: number;
  sandboxDefaults: { vcpus: number; memoryMb: number; diskMb: number; timeoutSeconds: number };
  /** Upper bounds a single sandbox may ask for; beyond them is a 400, not a scheduling 503. */
  sandboxLimits: { vcpus: number; memoryMb: number; diskMb: number; timeoutSeconds: number };
  /** Port envd listens on inside every sandbox. */
  envdPort: number;
}

export function resolveConfig(
  partial: Partial<ControlPlaneConfig> & { dir: string },
): ControlPlaneConfig {
  return {
    host: '127.0.0.1',
    port: 3000,
    rateLimit: { perSecond: 50, burst: 200 },
    heartbeatTimeoutMs: 20_000,
    reconcileIntervalMs: 5_000,
    transientGraceMs: 120_000,
    registrationTokenTtlMs: 24 * 3600_000,
    sandboxDefaults: { vcpus: 1, memoryMb: 512, diskMb: 2048, timeoutSeconds: 300 },
    sandboxLimits: { vcpus: 8, memoryMb: 16_384, diskMb: 65_536, timeoutSeconds: 86_400 },
    envdPort: 49983,
    ...partial,
  };
}
