import { mkdir, realpath } from 'node:fs/promises';
import { isValidId, pathExists, WrennError } from '@wrenn/common';
import { CleanupStack } from '../cleanup.ts';
import { step } from '../crash.ts';
import { createSandboxOverlay } from '../disk.ts';
import { inRange, LIMITS, type Manager } from '../manager.ts';
import { newSandbox, type Sandbox, type SandboxSpec, type TimeoutAction } from '../sandbox.ts';
import { removeDir, runningStateOf, sandboxPaths, writeRunningState } from '../store.ts';
import { resolveTemplateFor } from '../templates.ts';
import { initSandboxEnvd } from './envd-init.ts';
import { templateSource } from './template-snapshot.ts';
import { vmSpecOf } from './vm-spec.ts';

export interface CreateParams {
  sandboxId: string;
  teamId: string;
  templateId: string;
  vcpus?: number;
  memoryMb?: number;
  diskMb?: number;
  timeoutSeconds?: number;
  timeoutAction?: TimeoutAction;
  envVars?: Record<string, string>;
  metadata?: Record<string, string>;
  envdAccessToken?: string;
}

export function validateCreate(p: CreateParams): SandboxSpec {
  if (!isValidId(p.sandboxId))
    throw new WrennError('invalid_argument', `bad sandbox id ${JSON.stringify(p.sandboxId)}`);
  if (!isValidId(p.teamId))
    throw new WrennError('invalid_argument', `bad team id ${JSON.stringify(p.teamId)}`);
  if (!isValidId(p.templateId))
    throw new WrennError('invalid_argument', `bad template id ${JSON.stringify(p.templateId)}`);
  const vcpus = inRange(
    'vcpus',
    p.vcpus || LIMITS.vcpus.default,
    LIMITS.vcpus.min,
    LIMITS.vcpus.max,
  );
  const memoryMb = inRange(
    'memory_mb',
    p.memoryMb || LIMITS.memoryMb.default,
    LIMITS.memoryMb.min,
    LIMITS.memoryMb.max,
  );
  const diskMb = inRange('disk_mb', p.diskMb ?? 0, LIMITS.diskMb.min, LIMITS.diskMb.max);
  const timeout = inRange('timeout_seconds', p.timeoutSeconds ?? 0, 0, LIMITS.timeoutSeconds.max);
  return {
    id: p.sandboxId,
    teamId: p.teamId,
    templateId: p.templateId,
    vcpus,
    memoryMb,
    diskMb,
    timeoutMs: timeout * 1000,
    timeoutAction: p.timeoutAction ?? 'kill',
    metadata: p.metadata ?? {},
    envVars: p.envVars ?? {},
    envdAccessToken: p.envdAccessToken ?? '',
    createdAt: Date.now(),
  };
}

/**
 * Create: slot → base-image reference → dir → overlay → VM (from the template snapshot,
 * else cold) → running state → envd healthy → envd /init → running.
 * Every acquisition pushes its undo; a failure unwinds them all: nothing half-created
 * remains, in memory or on disk.
 */
export async function createSandbox(m: Manager, params: CreateParams): Promise<Sandbox> {
  m.refuseWhenClosing();
  const spec = validateCreate(params);
  const id = spec.id;
  if (m.boxes.has(id)) throw new WrennError('conflict', `sandbox ${id} already exists`);
  const tpl = await resolveTemplateFor(m.dir, spec.teamId, spec.templateId);
  const paths = sandboxPaths(m.dir, id);
  if (await pathExists(paths.live)) {
    throw new WrennError('conflict', `sandbox ${id} already has a directory on this host`);
  }
  const sb = newSandbox(spec, 0, 'starting');
  m.boxes.set(id, sb); // claims the id; removed by the cleanup stack on failure
  const log = m.log.child({ sandbox: id });
  const f = { sandbox: id };

  return sb.lock.run(async () => {
    const cleanup = new CleanupStack(log);
    cleanup.push('forget', () => {
      m.boxes.delete(id);
    });
    try {
      sb.slot = await step(log, 'create', 'allocate-slot', f, () => m.slots.allocate());
      cleanup.push('release-slot', () => m.slots.release(sb.slot));

      m.baseRefs.acquire(tpl.baseImage);
      sb.baseImage = tpl.baseImage;
      cleanup.push('release-base', () => {
        m.baseRefs.release(tpl.baseImage);
        sb.baseImage = undefined;
      });

      await step(log, 'create', 'make-dir', f, () => mkdir(paths.live, { recursive: false }));
      cleanup.push('remove-dir', () => removeDir(paths.live));

      const source = await templateSource(m, tpl, sb);
      await step(log, 'create', 'create-overlay', f, async () =>
        // Canonical backing path: the overlay must not depend on symlinks into WRENN_DIR.
        createSandboxOverlay(
          await realpath(source.disk.path),
          paths.overlay,
          sb.diskMb,
          source.disk.format,
        ),
      );

      const vm = await step(log, 'create', 'start-vm', f, () =>
        m.driver.start(vmSpecOf(m, sb, tpl), source.vm),
      );
      sb.vm = vm;
      cleanup.push('kill-vm', async () => {
        sb.vm = undefined;
        await m.driver.kill(vm);
      });
      sb.startedAt = Date.now();

      await step(log, 'create', 'write-running-state', f, () =>
        writeRunningState(paths.live, runningStateOf(sb, 'starting', vm, tpl.baseImage)),
      );
      await step(log, 'create', 'init-envd', f, () => initSandboxEnvd(m, sb, source.envdToken));
      sb.endAt = sb.timeoutMs ? Date.now() + sb.timeoutMs : 0;
      await step(log, 'create', 'mark-running', f, () =>
        writeRunningState(paths.live, runningStateOf(sb, 'running', vm, tpl.baseImage)),
      );
      sb.status = 'running';
      cleanup.disarm();
      log.info({ event: 'created', slot: sb.slot, source: source.vm.kind }, 'sandbox created');
      return sb;
    } catch (e) {
      log.warn({ event: 'create-failed', error: (e as Error).message }, 'create failed, unwinding');
      await cleanup.unwind();
      throw e;
    }
  });
}
