import { mkdir, statfs } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { closeWithGrace, createLogger, type Logger, layout, WrennError } from '@wrenn/common';
import { type DriverBundle, defaultDriver } from './driver-factory.ts';
import { Manager, type TemplateSnapshotBuilder } from './manager.ts';
import { MetricsSampler } from './metrics.ts';
import { Reaper } from './reaper.ts';
import { readIdentity, registerOrReuse, startHeartbeat } from './registration.ts';
import { buildServer } from './server/http.ts';
import { shutdownSandboxes } from './shutdown.ts';
import { recover, type StartupReport } from './startup/index.ts';
import type { VmmDriver } from './vmm/driver.ts';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  dir: string;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  hostToken: string;
  pauseOnShutdown?: boolean;
  /** Register with / heartbeat to a control plane. */
  controlPlaneUrl?: string;
  registrationToken?: string;
  heartbeatMs?: number;
  /** Injected VMM (tests); default: the QEMU driver. */
  driver?: VmmDriver;
  accelerator?: string;
  templateSnapshotBuilder?: TemplateSnapshotBuilder;
  portBase?: number;
  maxSlots?: number;
  reaperIntervalMs?: number;
  metricsIntervalMs?: number;
  shutdownDeadlineMs?: number;
  envdReadyTimeoutMs?: number;
  drainTimeoutMs?: number;
  log?: Logger;
}

export interface RunningAgent {
  url: string;
  manager: Manager;
  startup: StartupReport;
  close(): Promise<void>;
}

/**
 * Start the host agent: recover (sweep → re-adopt → orphans → restore), start the TTL
 * reaper and metrics, then serve Connect RPC + the proxy. Nothing is served before the
 * recovery finished, so no RPC races a slot reservation.
 *
 * @example
 *   const agent = await startAgent({ dir: '/var/lib/wrenn', hostToken: 't0ken' });
 *   // ... agent.url is http://127.0.0.1:<port>
 *   await agent.close(); // VMs keep running for the next agent to re-adopt
 */
export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  if (!opts.hostToken) throw new WrennError('invalid_argument', 'a host token is required');
  const log = opts.log ?? createLogger('wrenn-agent');
  await mkdir(layout(opts.dir).sandboxes, { recursive: true });
  await mkdir(layout(opts.dir).tmp, { recursive: true });

  let bundle: DriverBundle;
  if (opts.driver) {
    bundle = {
      driver: opts.driver,
      accelerator: opts.accelerator ?? 'none',
      ...(opts.templateSnapshotBuilder
        ? { templateSnapshotBuilder: opts.templateSnapshotBuilder }
        : {}),
    };
  } else bundle = await defaultDriver(opts.dir);

  const disk = await statfs(opts.dir);
  const m = new Manager({
    dir: opts.dir,
    driver: bundle.driver,
    log,
    accelerator: bundle.accelerator,
    ...(bundle.templateSnapshotBuilder
      ? { templateSnapshotBuilder: bundle.templateSnapshotBuilder }
      : {}),
    capacity: {
      vcpus: cpus().length,
      memoryMb: Math.floor(totalmem() / 1024 / 1024),
      diskMb: Math.floor((disk.blocks * disk.bsize) / 1024 / 1024),
    },
    ...(opts.portBase ? { portBase: opts.portBase } : {}),
    ...(opts.maxSlots ? { maxSlots: opts.maxSlots } : {}),
    ...(opts.envdReadyTimeoutMs ? { envdReadyTimeoutMs: opts.envdReadyTimeoutMs } : {}),
    ...(opts.drainTimeoutMs ? { drainTimeoutMs: opts.drainTimeoutMs } : {}),
  });

  const startup = await recover(m);
  const reaper = new Reaper(m, opts.reaperIntervalMs ?? 1000);
  reaper.start();
  const metrics = new MetricsSampler(m, opts.metricsIntervalMs ?? 5000);
  metrics.start();

  let hostId = (await readIdentity(opts.dir).catch(() => undefined))?.hostId ?? '';
  let token = opts.hostToken;
  const app = await buildServer({
    m,
    metrics,
    hostId: () => hostId,
    version: AGENT_VERSION,
    token: () => token,
  });
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ host, port: opts.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let heartbeat: { stop(): void } | undefined;
  if (opts.controlPlaneUrl) {
    const identity = await registerOrReuse({
      dir: opts.dir,
      controlPlaneUrl: opts.controlPlaneUrl,
      ...(opts.registrationToken ? { registrationToken: opts.registrationToken } : {}),
      agentUrl: url,
      capacity: m.capacity,
    });
    hostId = identity.hostId;
    // From now on the control plane's token is the one every request must carry.
    token = identity.hostToken;
    heartbeat = startHeartbeat(m, identity, log, opts.heartbeatMs ?? 5000);
  }
  log.info({ event: 'serving', url, ...summary(startup) }, 'agent serving');

  let closed: Promise<void> | undefined;
  return {
    url,
    manager: m,
    startup,
    close: () => {
      closed ??= (async () => {
        heartbeat?.stop();
        await reaper.stop();
        metrics.stop();
        m.closing = true;
        await closeWithGrace(app.server, () => app.close());
        await shutdownSandboxes(
          m,
          opts.pauseOnShutdown === true,
          opts.shutdownDeadlineMs ?? 60_000,
        );
        // VMs left running keep running; only our control connections to them close.
        await (m.driver as { detachAll?: () => Promise<void> }).detachAll?.();
        log.info({ event: 'closed' }, 'agent closed');
      })();
      return closed;
    },
  };
}

function summary(s: StartupReport) {
  return {
    swept: s.sweep.removed.length,
    promoted: s.sweep.promoted.length,
    adopted: s.readopt.adopted.length,
    orphansKilled: s.orphansKilled.length,
    restored: s.restore.restored.length,
    trashed: s.restore.trashed.length,
  };
}
