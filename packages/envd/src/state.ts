import type { EnvdOptions } from './config.ts';

/**
 * What POST /init sets and every request reads. One instance per envd process.
 * INVARIANT: once accessToken is set, every route but /health requires it (or a valid
 * signature on /files); /init may replace it only when the caller presents the old one.
 */
export class EnvdState {
  accessToken: string | undefined;
  defaultUser: string;
  defaultWorkdir: string | undefined;
  /** Extra environment for every process started after /init. */
  readonly envVars = new Map<string, string>();

  constructor(readonly opts: EnvdOptions) {
    this.defaultUser = opts.defaultUser;
  }
}
