import { closeWithGrace, createLogger, type Logger, wrennDir } from '@wrenn/common';
import { type ControlPlaneConfig, resolveConfig } from './config.ts';
import { type Core, createCore } from './core.ts';
import { openDatabase } from './db/database.ts';
import { type BuiltServer, buildServer } from './http/server.ts';

export interface StartControlPlaneOptions extends Partial<ControlPlaneConfig> {
  dir?: string;
  log?: Logger;
  clock?: () => number;
  /** Run the reconciler on a timer (default true; tests call `core.reconciler.runOnce()`). */
  reconcile?: boolean;
  /** Hook to add routes (the E2B-compatible API) before the server listens. */
  extend?: (server: BuiltServer, core: Core) => void | Promise<void>;
}

export interface RunningControlPlane {
  url: string;
  core: Core;
  server: BuiltServer;
  /** The admin key when this start created it (first start only), else null. */
  adminKey: string | null;
  close(): Promise<void>;
}

/**
 * Opens (and migrates) the database, bootstraps the admin key and built-in templates,
 * serves the API + gateway, and starts the reconciler.
 */
export async function startControlPlane(
  opts: StartControlPlaneOptions = {},
): Promise<RunningControlPlane> {
  const { log: givenLog, clock, reconcile = true, extend, ...partial } = opts;
  const config = resolveConfig({
    ...partial,
    dir: wrennDir(opts.dir),
    databaseUrl: opts.databaseUrl ?? process.env.DATABASE_URL,
  });
  const log = givenLog ?? createLogger('control-plane');
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dir: config.dir });
  const core = createCore(db, config, log, clock);
  try {
    await core.templates.ensureBuiltins();
    const adminKey = await core.keys.bootstrapAdmin(config.dir);
    const server = buildServer(core);
    await extend?.(server, core);
    await server.app.listen({ host: config.host, port: config.port });
    const addr = server.app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    if (reconcile) core.reconciler.start();
    log.info({ url, database: db.location }, 'control plane ready');
    return {
      url,
      core,
      server,
      adminKey,
      async close() {
        await core.reconciler.stop();
        await closeWithGrace(server.app.server, () => server.app.close());
        server.gateway.close();
        await db.close();
      },
    };
  } catch (e) {
    await db.close();
    throw e;
  }
}
