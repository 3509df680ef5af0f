import { Code, ConnectError, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import { agentv1 } from '@wrenn/proto';
import { createSandbox } from '../lifecycle/create.ts';
import { destroySandbox } from '../lifecycle/destroy.ts';
import { pauseSandbox } from '../lifecycle/pause.ts';
import { resumeSandbox } from '../lifecycle/resume.ts';
import {
  createTemplateFromSandbox,
  deleteTemplate,
  templateSize,
} from '../lifecycle/template-snapshot.ts';
import { setSandboxTimeout } from '../lifecycle/timeout.ts';
import type { Manager } from '../manager.ts';
import type { MetricsSampler } from '../metrics.ts';
import type { Sandbox, SandboxStatus } from '../sandbox.ts';
import { listTemplates, type Template } from '../templates.ts';
import { HOST_TOKEN_HEADER, hostTokenOk } from './auth.ts';
import { toConnectError } from './errors.ts';

const STATUS: Record<SandboxStatus, agentv1.SandboxStatus> = {
  starting: agentv1.SandboxStatus.STARTING,
  running: agentv1.SandboxStatus.RUNNING,
  pausing: agentv1.SandboxStatus.PAUSING,
  paused: agentv1.SandboxStatus.PAUSED,
  resuming: agentv1.SandboxStatus.RESUMING,
  stopping: agentv1.SandboxStatus.STOPPING,
  stopped: agentv1.SandboxStatus.STOPPED,
  error: agentv1.SandboxStatus.ERROR,
};

export function sandboxInfo(sb: Sandbox) {
  return {
    sandboxId: sb.id,
    teamId: sb.teamId,
    templateId: sb.templateId,
    status: STATUS[sb.status],
    vcpus: sb.vcpus,
    memoryMb: sb.memoryMb,
    diskMb: sb.diskMb,
    createdAtMs: BigInt(sb.createdAt),
    startedAtMs: BigInt(sb.startedAt),
    endAtMs: BigInt(sb.status === 'running' ? sb.endAt : 0),
    timeoutAction:
      sb.timeoutAction === 'pause' ? agentv1.TimeoutAction.PAUSE : agentv1.TimeoutAction.KILL,
    metadata: sb.metadata,
    slot: sb.slot,
    envdAccessToken: sb.envdAccessToken,
    error: sb.error ?? '',
  };
}

async function templateInfo(t: Template) {
  return {
    teamId: t.teamId,
    templateId: t.templateId,
    hasSnapshot: !!t.snapshotMeta,
    sizeBytes: BigInt(await templateSize(t)),
    createdAtMs: BigInt(t.snapshotMeta ? Date.parse(t.snapshotMeta.created_at) : 0),
    memoryMb: t.snapshotMeta?.memory_mb ?? 0,
    vcpus: t.snapshotMeta?.vcpus ?? 0,
  };
}

/** Every RPC needs the host token; anything else is Unauthenticated. */
export function hostTokenInterceptor(token: () => string): Interceptor {
  return (next) => async (req) => {
    if (!hostTokenOk(req.header.get(HOST_TOKEN_HEADER), token())) {
      throw new ConnectError(`missing or wrong ${HOST_TOKEN_HEADER}`, Code.Unauthenticated);
    }
    return next(req);
  };
}

/** Domain errors become Connect codes here, at the edge, and only here. */
const mapErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    throw toConnectError(e);
  }
};

export interface RpcDeps {
  m: Manager;
  metrics: MetricsSampler;
  hostId: () => string;
  version: string;
}

export const rpcInterceptors = (token: () => string): Interceptor[] => [
  mapErrors,
  hostTokenInterceptor(token),
];

export function agentRoutes({ m, metrics, hostId, version }: RpcDeps) {
  return (router: ConnectRouter) =>
    router.service(agentv1.AgentService, {
      async create(req) {
        const sb = await createSandbox(m, {
          sandboxId: req.sandboxId,
          teamId: req.teamId,
          templateId: req.templateId,
          vcpus: req.vcpus,
          memoryMb: req.memoryMb,
          diskMb: req.diskMb,
          timeoutSeconds: req.timeoutSeconds,
          timeoutAction: req.timeoutAction === agentv1.TimeoutAction.PAUSE ? 'pause' : 'kill',
          envVars: req.envVars,
          metadata: req.metadata,
          envdAccessToken: req.envdAccessToken,
        });
        return { sandbox: sandboxInfo(sb) };
      },
      async destroy(req) {
        await destroySandbox(m, req.sandboxId);
        return {};
      },
      async pause(req) {
        return { sandbox: sandboxInfo(await pauseSandbox(m, req.sandboxId)) };
      },
      async resume(req) {
        return { sandbox: sandboxInfo(await resumeSandbox(m, req.sandboxId, req.timeoutSeconds)) };
      },
      async setTimeout(req) {
        return {
          sandbox: sandboxInfo(await setSandboxTimeout(m, req.sandboxId, req.timeoutSeconds)),
        };
      },
      async list() {
        const autoPausedIds = m.autoPaused;
        m.autoPaused = [];
        return { sandboxes: [...m.boxes.values()].map(sandboxInfo), autoPausedIds };
      },
      async getMetrics(req) {
        m.get(req.sandboxId);
        return {
          points: metrics.points(req.sandboxId, Number(req.sinceMs)).map((p) => ({
            ...p,
            memUsedBytes: BigInt(p.memUsedBytes),
            memTotalBytes: BigInt(p.memTotalBytes),
            diskUsedBytes: BigInt(p.diskUsedBytes),
            diskTotalBytes: BigInt(p.diskTotalBytes),
            timestampMs: BigInt(p.timestampMs),
          })),
        };
      },
      async createTemplateSnapshot(req) {
        const t = await createTemplateFromSandbox(m, req.sandboxId, req.teamId, req.templateId);
        return { template: await templateInfo(t) };
      },
      async deleteTemplate(req) {
        await deleteTemplate(m, req.teamId, req.templateId);
        return {};
      },
      async listTemplates() {
        return { templates: await Promise.all((await listTemplates(m.dir)).map(templateInfo)) };
      },
      async hostStatus() {
        const load = m.load();
        return {
          hostId: hostId(),
          vcpusTotal: m.capacity.vcpus,
          vcpusUsed: load.vcpusUsed,
          memoryTotalMb: BigInt(m.capacity.memoryMb),
          memoryUsedMb: BigInt(load.memoryUsedMb),
          diskTotalMb: BigInt(m.capacity.diskMb),
          diskUsedMb: BigInt(load.diskUsedMb),
          sandboxesRunning: load.sandboxesRunning,
          sandboxesPaused: load.sandboxesPaused,
          accelerator: m.accelerator,
          version,
        };
      },
    });
}
