import { initEnvdWhenReady } from '../envd-client.ts';
import type { Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';

/**
 * envd's /init for a sandbox after create or resume (its env vars, its token, the clock),
 * retried until the guest answers. `currentToken` is what envd holds now.
 */
export function initSandboxEnvd(
  m: Manager,
  sb: Sandbox,
  currentToken: string | undefined,
): Promise<void> {
  return initEnvdWhenReady(
    m.slots.envdPort(sb.slot),
    {
      envVars: sb.envVars,
      accessToken: sb.envdAccessToken, // '' clears a token a snapshot's envd may hold
    },
    currentToken,
    m.envdReadyTimeoutMs,
  );
}
