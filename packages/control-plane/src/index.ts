export { HOST_TOKEN_HEADER } from './agents/pool.ts';
export { type ControlPlaneConfig, resolveConfig } from './config.ts';
export {
  type RunningControlPlane,
  type StartControlPlaneOptions,
  startControlPlane,
} from './control-plane.ts';
export { type Core, createCore } from './core.ts';
export { type Db, type Dialect, openDatabase } from './db/database.ts';
export type { RouteRegistry, RouteSpec } from './http/route.ts';
export { type BuiltServer, buildServer } from './http/server.ts';
export { ADMIN_KEY_FILE, ADMIN_TEAM, type Caller } from './services/keys.ts';
export type { SandboxView } from './services/sandbox-view.ts';
export type { CreateSandboxInput, ExecInput, ExecOutput } from './services/sandboxes.ts';
