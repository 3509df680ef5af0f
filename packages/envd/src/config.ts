/** How envd runs: `guest` is PID-1's child inside a VM, `host` is a plain process for tests. */
export type EnvdMode = 'guest' | 'host';

export interface EnvdOptions {
  mode: EnvdMode;
  /** TCP port; E2B's envd port by default. */
  port: number;
  host: string;
  /**
   * Host mode only: directory that stands in for `/home` so each user's home is
   * `<homeRoot>/<name>` (created on demand) and relative paths stay inside the test's dir.
   * Guest mode uses the homes from /etc/passwd.
   */
  homeRoot?: string;
  /** User for requests that name none, until /init changes it. */
  defaultUser: string;
  /** Process output kept for a later Connect, per process (bytes). */
  outputBufferBytes: number;
}

export const ENVD_PORT = 49983;
/** Version reported by /health and /metrics; ≥ every gate in the e2b SDK (0.6.4 watch). */
export const ENVD_VERSION = '0.6.4';

export function defaultOptions(mode: EnvdMode): EnvdOptions {
  return {
    mode,
    port: ENVD_PORT,
    host: '0.0.0.0',
    defaultUser: 'user',
    outputBufferBytes: 1 << 20,
  };
}
