/**
 * @wrenn/agent — the host agent: sandboxes (create, pause, resume, destroy), crash-safe
 * pause snapshots, startup recovery, the TTL reaper, metrics, and the Connect RPC API and
 * proxy the control plane calls. See the package README.
 */
export { AGENT_VERSION, type AgentOptions, type RunningAgent, startAgent } from './agent.ts';
export { ALL_CRASH_POINTS, CRASH_POINTS } from './crash.ts';
export { LIMITS, Manager, type TemplateSnapshotBuilder } from './manager.ts';
export type { Sandbox, SandboxStatus } from './sandbox.ts';
export { HOST_TOKEN_HEADER } from './server/auth.ts';
