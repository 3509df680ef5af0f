import type { Logger } from '@wrenn/common';
import { AgentPool } from './agents/pool.ts';
import type { ControlPlaneConfig } from './config.ts';
import type { Db } from './db/database.ts';
import { Reconciler } from './reconciler/reconciler.ts';
import { AuditLog } from './services/audit.ts';
import { HostService } from './services/hosts.ts';
import { KeyService } from './services/keys.ts';
import { SandboxService } from './services/sandboxes.ts';
import { TemplateService } from './services/templates.ts';

/**
 * The service layer, independent of HTTP: the native `/v1` routes and the E2B-compatible
 * routes are two thin edges over the same `Core`.
 */
export interface Core {
  db: Db;
  config: ControlPlaneConfig;
  log: Logger;
  clock: () => number;
  agents: AgentPool;
  audit: AuditLog;
  keys: KeyService;
  hosts: HostService;
  templates: TemplateService;
  sandboxes: SandboxService;
  reconciler: Reconciler;
}

export function createCore(
  db: Db,
  config: ControlPlaneConfig,
  log: Logger,
  clock: () => number = Date.now,
): Core {
  const agents = new AgentPool();
  const audit = new AuditLog(db, clock);
  const keys = new KeyService(db, audit, clock);
  const hosts = new HostService(db, agents, audit, clock, config.registrationTokenTtlMs);
  const templates = new TemplateService(db, agents, audit, clock, config.sandboxDefaults);
  const sandboxes = new SandboxService(db, agents, templates, audit, config, clock, log);
  const reconciler = new Reconciler(db, agents, audit, config, clock, log);
  // A host that comes back is reconciled at once rather than at the next tick.
  hosts.onHostRecovered = () => {
    reconciler
      .runOnce()
      .catch((e) => log.warn({ err: String(e) }, 'reconcile after recovery failed'));
  };
  return { db, config, log, clock, agents, audit, keys, hosts, templates, sandboxes, reconciler };
}
