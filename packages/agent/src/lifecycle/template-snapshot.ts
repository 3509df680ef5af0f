import { mkdir, readdir, realpath, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  fsyncPath,
  isValidId,
  layout,
  pathExists,
  SYSTEM_TEAM,
  WrennError,
  writeFileAtomic,
} from '@wrenn/common';
import { step } from '../crash.ts';
import { flattenToRaw, qcow2BackingFile } from '../disk.ts';
import type { Manager } from '../manager.ts';
import type { Sandbox } from '../sandbox.ts';
import { nowNs, sandboxPaths } from '../store.ts';
import {
  BASE_IMAGE,
  dirBytes,
  promoteTemplateSnapshot,
  resolveTemplate,
  resolveTemplateFor,
  TEMPLATE_SNAPSHOT_DIR,
  TEMPLATE_SNAPSHOT_META,
  type Template,
  type TemplateSnapshotMeta,
} from '../templates.ts';
import type { VmSource } from '../vmm/driver.ts';

export interface SandboxSource {
  vm: VmSource;
  /** envd's token inside the snapshot, if the snapshot's envd already has one. */
  envdToken?: string;
  /** What the new sandbox's overlay is backed by: the disk the snapshot's RAM belongs to. */
  disk: { path: string; format: 'raw' | 'qcow2' };
}

/**
 * Where a new sandbox starts from: the template's snapshot when its size matches, built
 * lazily (once per template, shared by concurrent creates) when the driver can; else a
 * cold boot from the base image.
 */
export async function templateSource(
  m: Manager,
  tpl: Template,
  sb: Sandbox,
): Promise<SandboxSource> {
  const cold: SandboxSource = {
    vm: { kind: 'cold' },
    disk: { path: tpl.baseImage, format: 'raw' },
  };
  if (!m.driver.capabilities.templateSnapshots) return cold;
  let t = tpl;
  if (
    t.snapshotMeta?.disk &&
    t.snapshotDir &&
    !(await backingIntact(join(t.snapshotDir, t.snapshotMeta.disk)))
  ) {
    // Its disk's backing file moved or vanished (the image was rebuilt or its dir moved):
    // no clone could boot from it. Set it aside and build a fresh one.
    m.log.warn(
      { event: 'template-snapshot-stale', template: `${tpl.teamId}/${tpl.templateId}` },
      'template snapshot disk lost its backing file; rebuilding',
    );
    const trash = `${t.snapshotDir}.trash-${nowNs()}`;
    await rename(t.snapshotDir, trash).catch(() => undefined);
    await rm(trash, { recursive: true, force: true });
    t = await resolveTemplate(m.dir, tpl.teamId, tpl.templateId);
  }
  if (!t.snapshotMeta && m.templateSnapshotBuilder) {
    await ensureTemplateSnapshot(m, tpl, sb.vcpus, sb.memoryMb);
    t = await resolveTemplate(m.dir, tpl.teamId, tpl.templateId);
  }
  const meta = t.snapshotMeta;
  if (!meta || !t.snapshotDir || meta.memory_mb !== sb.memoryMb || meta.vcpus !== sb.vcpus)
    return cold;
  const disk = meta.disk
    ? { path: join(t.snapshotDir, meta.disk), format: 'qcow2' as const }
    : { path: tpl.baseImage, format: 'raw' as const };
  return {
    vm: { kind: meta.kind === 'template' ? 'template' : 'snapshot', snapshotDir: t.snapshotDir },
    disk,
    ...(meta.envd_access_token ? { envdToken: meta.envd_access_token } : {}),
  };
}

async function backingIntact(disk: string): Promise<boolean> {
  const backing = await qcow2BackingFile(disk).catch(() => undefined);
  return backing !== undefined && (await pathExists(backing));
}

/** Build `images/<team>/<tpl>/snapshot/` once; concurrent callers share the build. */
export function ensureTemplateSnapshot(
  m: Manager,
  tpl: Template,
  vcpus: number,
  memoryMb: number,
): Promise<void> {
  const key = `${tpl.teamId}/${tpl.templateId}`;
  const running = m.templateBuilds.get(key);
  if (running) return running;
  const p = buildTemplateSnapshot(m, tpl, vcpus, memoryMb).finally(() =>
    m.templateBuilds.delete(key),
  );
  m.templateBuilds.set(key, p);
  return p;
}

async function buildTemplateSnapshot(
  m: Manager,
  tpl: Template,
  vcpus: number,
  memoryMb: number,
): Promise<void> {
  const builder = m.templateSnapshotBuilder;
  if (!builder) return;
  const log = m.log.child({ template: `${tpl.teamId}/${tpl.templateId}` });
  const f = { template: `${tpl.teamId}/${tpl.templateId}` };
  const staging = join(tpl.dir, `${TEMPLATE_SNAPSHOT_DIR}.staging-${nowNs()}`);
  try {
    const started = performance.now();
    const { disk } = await step(log, 'template', 'build-snapshot', f, async () =>
      builder({
        // Canonical path: the snapshot's disk records it as its backing file, and must not
        // depend on the (possibly symlinked) way this agent's WRENN_DIR reaches the image.
        rootfs: await realpath(tpl.baseImage),
        kernel: tpl.kernel,
        initrd: tpl.initrd,
        ...(tpl.cmdline ? { cmdline: tpl.cmdline } : {}),
        vcpus,
        memoryMb,
        outDir: staging,
      }),
    );
    const meta: TemplateSnapshotMeta = {
      version: 1,
      kind: 'template',
      disk,
      created_at: new Date().toISOString(),
      memory_mb: memoryMb,
      vcpus,
    };
    await step(log, 'template', 'promote-snapshot', f, () =>
      promoteTemplateSnapshot(staging, join(tpl.dir, TEMPLATE_SNAPSHOT_DIR), meta),
    );
    log.info(
      { event: 'template-snapshot-built', ms: Math.round(performance.now() - started) },
      'template snapshot built',
    );
  } catch (e) {
    // Not fatal: this create (and later ones) cold-boot; the next create tries again.
    log.warn(
      { event: 'template-snapshot-failed', error: (e as Error).message },
      'template snapshot build failed; cold boot',
    );
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * CreateTemplateSnapshot: a running sandbox becomes a new template and keeps running.
 * Its vCPUs stop while its RAM and disk are copied (a full snapshot + the flattened disk),
 * then run again. The template dir is built in `<tpl>.staging-<ns>` and renamed in whole.
 */
export async function createTemplateFromSandbox(
  m: Manager,
  sandboxId: string,
  teamId: string,
  templateId: string,
): Promise<Template> {
  m.refuseWhenClosing();
  if (!isValidId(teamId))
    throw new WrennError('invalid_argument', `bad team id ${JSON.stringify(teamId)}`);
  if (!isValidId(templateId))
    throw new WrennError('invalid_argument', `bad template id ${JSON.stringify(templateId)}`);
  const sb = m.get(sandboxId);
  const finalDir = layout(m.dir).image(teamId, templateId);
  if (await pathExists(finalDir)) {
    throw new WrennError('conflict', `template ${teamId}/${templateId} already exists`);
  }
  const log = m.log.child({ sandbox: sb.id, template: `${teamId}/${templateId}` });
  const f = { sandbox: sb.id, template: `${teamId}/${templateId}` };
  return sb.lock.run(async () => {
    m.expectStatus(sb, 'snapshot', 'running');
    const vm = sb.vm!;
    const srcTpl = await resolveTemplateFor(m.dir, sb.teamId, sb.templateId);
    const staging = `${finalDir}.staging-${nowNs()}`;
    const snapDir = join(staging, TEMPLATE_SNAPSHOT_DIR);
    await mkdir(snapDir, { recursive: true });
    let vcpusStopped = false;
    try {
      await step(log, 'template', 'pause-vcpus', f, () => m.driver.pause(vm));
      vcpusStopped = true;
      await step(log, 'template', 'write-template-staging', f, () =>
        m.driver.snapshotToDir(vm, snapDir, 'full'),
      );
      await step(log, 'template', 'copy-rootfs', f, () =>
        flattenToRaw(sandboxPaths(m.dir, sb.id).overlay, join(staging, BASE_IMAGE)),
      );
      await step(log, 'template', 'resume-vcpus', f, () => m.driver.resume(vm));
      vcpusStopped = false;
      await writeFileAtomic(
        join(staging, 'template.json'),
        `${JSON.stringify({ kernel: srcTpl.kernel, initrd: srcTpl.initrd, ...(srcTpl.cmdline ? { cmdline: srcTpl.cmdline } : {}), from_sandbox: sb.id, from_template: `${sb.teamId}/${sb.templateId}` }, null, 2)}\n`,
      );
      const meta: TemplateSnapshotMeta = {
        version: 1,
        kind: 'full',
        created_at: new Date().toISOString(),
        memory_mb: sb.memoryMb,
        vcpus: sb.vcpus,
        source_sandbox: sb.id,
        ...(sb.envdAccessToken ? { envd_access_token: sb.envdAccessToken } : {}),
      };
      await step(log, 'template', 'promote-template', f, async () => {
        for (const name of await readdir(snapDir)) await fsyncPath(join(snapDir, name));
        await writeFileAtomic(
          join(snapDir, TEMPLATE_SNAPSHOT_META),
          `${JSON.stringify(meta, null, 2)}\n`,
        );
        await fsyncPath(join(staging, BASE_IMAGE));
        await fsyncPath(staging);
        await mkdir(join(finalDir, '..'), { recursive: true });
        await rename(staging, finalDir);
        await fsyncPath(join(finalDir, '..'));
      });
    } catch (e) {
      if (vcpusStopped) await m.driver.resume(vm).catch(() => undefined);
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    return resolveTemplate(m.dir, teamId, templateId);
  });
}

/**
 * DeleteTemplate: refused while any sandbox uses it — running ones hold a base-image
 * reference, paused ones need the base to resume.
 */
export async function deleteTemplate(
  m: Manager,
  teamId: string,
  templateId: string,
): Promise<void> {
  const tpl = await resolveTemplate(m.dir, teamId, templateId);
  if (m.baseRefs.count(tpl.baseImage) > 0) {
    throw new WrennError(
      'failed_precondition',
      `template ${teamId}/${templateId} is in use by running sandboxes`,
    );
  }
  const users = [...m.boxes.values()].filter(
    (s) => s.templateId === templateId && (s.teamId === teamId || teamId === SYSTEM_TEAM),
  );
  if (users.length > 0) {
    throw new WrennError(
      'failed_precondition',
      `template ${teamId}/${templateId} is used by sandbox ${users[0]!.id} (${users[0]!.status})`,
    );
  }
  const trash = `${tpl.dir}.trash-${nowNs()}`;
  await rename(tpl.dir, trash);
  await rm(trash, { recursive: true, force: true });
}

export async function templateSize(t: Template): Promise<number> {
  return dirBytes(t.dir);
}
