import { createLogger, WrennError, wrennDir } from '@wrenn/common';
import type { RunningControlPlane } from '@wrenn/control-plane';
import type { Command } from 'commander';
import { allOpts } from '../client-config.ts';

export interface ControlPlaneFlags {
  dir?: string;
  host: string;
  port: string;
  databaseUrl?: string;
  sandboxDomain?: string;
  /** HTTPS listener for the sandbox domain (docs/e2b.md, Domain mode). */
  sandboxTlsPort?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Starts the control plane from CLI flags (shared by `wrenn control-plane` and `wrenn up`). */
export async function startFromFlags(
  o: ControlPlaneFlags,
  logLevel?: string,
): Promise<RunningControlPlane> {
  // Loaded on use: every other CLI command starts faster without the server's modules.
  const { startControlPlane } = await import('@wrenn/control-plane');
  const cp = await startControlPlane({
    dir: wrennDir(o.dir),
    host: o.host,
    port: Number(o.port),
    databaseUrl: o.databaseUrl ?? process.env.DATABASE_URL,
    sandboxDomain: o.sandboxDomain,
    log: createLogger('control-plane', logLevel),
  });
  if (o.sandboxTlsPort === undefined) return cp;
  try {
    if (!o.sandboxDomain) {
      throw new WrennError('invalid_argument', '--sandbox-tls-port needs --sandbox-domain');
    }
    const { serveSandboxTls } = await import('@wrenn/control-plane/e2b/tls.ts');
    const tls = await serveSandboxTls(cp.server, {
      domain: o.sandboxDomain,
      host: o.host,
      port: Number(o.sandboxTlsPort),
      dir: wrennDir(o.dir),
      ...(o.tlsCert ? { certFile: o.tlsCert } : {}),
      ...(o.tlsKey ? { keyFile: o.tlsKey } : {}),
    });
    const close = cp.close.bind(cp);
    cp.close = async () => {
      await tls.close();
      await close();
    };
    process.stderr.write(
      `wrenn: sandbox domain over TLS on ${tls.url} (${o.tlsCert ? `certificate ${o.tlsCert}` : `self-signed certificate ${wrennDir(o.dir)}/tls/${o.sandboxDomain}.crt`})\n`,
    );
    return cp;
  } catch (e) {
    await cp.close();
    throw e;
  }
}

/** Resolves when SIGINT or SIGTERM arrives. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** `wrenn control-plane`: the API, scheduler, reconciler and gateway, without an agent. */
export function registerControlPlaneCommand(program: Command): void {
  program
    .command('control-plane')
    .description('run the control plane alone (agents join with `wrenn agent --register`)')
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--port <n>', 'port', '3000')
    .option(
      '--database-url <url>',
      'postgres://… (default: $DATABASE_URL, else SQLite under --dir)',
    )
    .option('--sandbox-domain <domain>', 'route <port>-<id>.<domain> hosts to sandboxes')
    .option(
      '--sandbox-tls-port <n>',
      'also serve the sandbox domain (and api.<domain>) over HTTPS on this port',
    )
    .option(
      '--tls-cert <file>',
      'PEM certificate for *.<domain> (default: a generated self-signed one)',
    )
    .option('--tls-key <file>', 'PEM key of --tls-cert')
    .action(async (_o, cmd: Command) => {
      const o = allOpts(cmd) as ControlPlaneFlags;
      const cp = await startFromFlags(o);
      if (cp.adminKey) {
        process.stdout.write(
          `Admin API key (shown once; also saved 0600 in ${wrennDir(o.dir)}/admin-key):\n  ${cp.adminKey}\n`,
        );
      }
      process.stdout.write(
        `Wrenn control plane listening on ${cp.url} (database: ${cp.core.db.location})\n`,
      );
      process.stdout.write(
        `Add a host: wrenn hosts token --api-url ${cp.url} --api-key <admin key>, then wrenn agent --register <token> --control-plane ${cp.url}\n`,
      );
      await untilSignal();
      await cp.close();
    });
}
