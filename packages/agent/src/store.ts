import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncPath, isValidId, layout, writeFileAtomic } from '@wrenn/common';
import { z } from 'zod';
import type { Sandbox, SandboxSpec } from './sandbox.ts';
import type { VmRef } from './vmm/driver.ts';

/**
 * The on-disk store (DESIGN.md section 4):
 *
 *   sandboxes/<id>/                 live dir: rootfs.qcow2, and either
 *                                   sandbox.json (running state) or a pause snapshot
 *                                   (driver files + wrenn-snapshot.json, written last)
 *   sandboxes/<id>.staging-<ns>/    pause in progress
 *   sandboxes/<id>.trash-<ns>/      to be deleted
 *
 * The disk is the truth for what is paused; the manager's map for what runs.
 */
export const OVERLAY = 'rootfs.qcow2';
export const RUNNING_STATE = 'sandbox.json';
export const PAUSE_META = 'wrenn-snapshot.json';
/** The VMM driver's runtime dir inside a live sandbox dir. */
export const VM_DIR = 'vm';

export const sandboxPaths = (dir: string, id: string) => {
  const live = layout(dir).sandbox(id);
  return {
    live,
    overlay: join(live, OVERLAY),
    runningState: join(live, RUNNING_STATE),
    meta: join(live, PAUSE_META),
    runDir: join(live, VM_DIR),
  };
};

export const stagingName = (id: string, ns = nowNs()) => `${id}.staging-${ns}`;
export const trashName = (id: string, ns = nowNs()) => `${id}.trash-${ns}`;
export const isStagingOrTrash = (name: string) =>
  name.includes('.staging-') || name.includes('.trash-');

export function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n)).toString();
}

const record = z.record(z.string(), z.string());

/** wrenn-snapshot.json: everything needed to restore a paused sandbox after a restart. */
export const pauseMetaSchema = z.object({
  version: z.literal(1),
  sandbox_id: z.string(),
  team_id: z.string(),
  template_id: z.string(),
  // 0 / absent = missing (a crash artefact); checked by the restore rules, not here.
  slot_index: z.number().int().nonnegative().optional(),
  created_at: z.string().datetime(),
  paused_at: z.string().datetime(),
  vcpus: z.number().int().positive(),
  memory_mb: z.number().int().positive(),
  disk_mb: z.number().int().nonnegative(),
  timeout_ms: z.number().int().nonnegative(),
  timeout_action: z.enum(['kill', 'pause']),
  remaining_ms: z.number().int().nonnegative(),
  metadata: record,
  env_vars: record,
  envd_access_token: z.string(),
  /** The template's base image the overlay is backed by. */
  base_image: z.string(),
  /** Files of the snapshot (driver files + overlay) with sizes, checked on read. */
  files: z.array(z.object({ name: z.string(), size: z.number().int().nonnegative() })),
});
export type PauseMeta = z.infer<typeof pauseMetaSchema>;

/** sandbox.json: a live VM the agent can re-adopt after a restart. */
export const runningStateSchema = z.object({
  version: z.literal(1),
  /** `starting` until envd answered /init: a re-adopted `starting` sandbox never got to its caller. */
  phase: z.enum(['starting', 'running']),
  sandbox_id: z.string(),
  team_id: z.string(),
  template_id: z.string(),
  slot_index: z.number().int().positive(),
  created_at: z.string().datetime(),
  started_at: z.string().datetime(),
  vcpus: z.number().int().positive(),
  memory_mb: z.number().int().positive(),
  disk_mb: z.number().int().nonnegative(),
  timeout_ms: z.number().int().nonnegative(),
  timeout_action: z.enum(['kill', 'pause']),
  end_at: z.number().int().nonnegative(),
  metadata: record,
  env_vars: record,
  envd_access_token: z.string(),
  base_image: z.string(),
  vm: z.custom<VmRef>(
    (v) => typeof v === 'object' && v !== null && typeof (v as VmRef).pid === 'number',
  ),
});
export type RunningState = z.infer<typeof runningStateSchema>;

export function specFromMeta(m: PauseMeta | RunningState): SandboxSpec {
  return {
    id: m.sandbox_id,
    teamId: m.team_id,
    templateId: m.template_id,
    vcpus: m.vcpus,
    memoryMb: m.memory_mb,
    diskMb: m.disk_mb,
    timeoutMs: m.timeout_ms,
    timeoutAction: m.timeout_action,
    metadata: m.metadata,
    envVars: m.env_vars,
    envdAccessToken: m.envd_access_token,
    createdAt: Date.parse(m.created_at),
  };
}

export function runningStateOf(
  sb: Sandbox,
  phase: RunningState['phase'],
  vm: VmRef,
  baseImage: string,
): RunningState {
  return {
    version: 1,
    phase,
    sandbox_id: sb.id,
    team_id: sb.teamId,
    template_id: sb.templateId,
    slot_index: sb.slot,
    created_at: new Date(sb.createdAt).toISOString(),
    started_at: new Date(sb.startedAt || Date.now()).toISOString(),
    vcpus: sb.vcpus,
    memory_mb: sb.memoryMb,
    disk_mb: sb.diskMb,
    timeout_ms: sb.timeoutMs,
    timeout_action: sb.timeoutAction,
    end_at: sb.endAt,
    metadata: sb.metadata,
    env_vars: sb.envVars,
    envd_access_token: sb.envdAccessToken,
    base_image: baseImage,
    vm,
  };
}

export function pauseMetaOf(
  sb: Sandbox,
  baseImage: string,
  remainingMs: number,
  files: PauseMeta['files'],
): PauseMeta {
  return {
    version: 1,
    sandbox_id: sb.id,
    team_id: sb.teamId,
    template_id: sb.templateId,
    slot_index: sb.slot,
    created_at: new Date(sb.createdAt).toISOString(),
    paused_at: new Date().toISOString(),
    vcpus: sb.vcpus,
    memory_mb: sb.memoryMb,
    disk_mb: sb.diskMb,
    timeout_ms: sb.timeoutMs,
    timeout_action: sb.timeoutAction,
    remaining_ms: Math.max(0, Math.round(remainingMs)),
    metadata: sb.metadata,
    env_vars: sb.envVars,
    envd_access_token: sb.envdAccessToken,
    base_image: baseImage,
    files,
  };
}

export class CorruptFileError extends Error {}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CorruptFileError(`${path}: not JSON (${(e as Error).message})`);
  }
}

/**
 * Read and check a pause meta: schema, the dir name matches the id, and every file it lists
 * exists with its recorded size (a truncated memory file or a missing overlay is corrupt).
 */
export async function readPauseMeta(snapDir: string): Promise<PauseMeta> {
  const parsed = pauseMetaSchema.safeParse(await readJson(join(snapDir, PAUSE_META)));
  if (!parsed.success)
    throw new CorruptFileError(
      `${PAUSE_META}: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
    );
  const meta = parsed.data;
  for (const f of meta.files) {
    const st = await stat(join(snapDir, f.name)).catch(() => undefined);
    if (!st) throw new CorruptFileError(`${f.name} is missing`);
    if (st.size !== f.size)
      throw new CorruptFileError(`${f.name} is ${st.size} bytes, meta says ${f.size}`);
  }
  return meta;
}

export async function readRunningState(liveDir: string): Promise<RunningState> {
  const parsed = runningStateSchema.safeParse(await readJson(join(liveDir, RUNNING_STATE)));
  if (!parsed.success)
    throw new CorruptFileError(
      `${RUNNING_STATE}: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
    );
  return parsed.data;
}

/**
 * Write `sandbox.json`. A `starting` record need not survive a power cut: the VM dies with
 * the host, and startup trashes a dir without a readable record, which is what a create
 * that never returned should become. Every other record is fsynced.
 */
export async function writeRunningState(liveDir: string, state: RunningState): Promise<void> {
  await writeFileAtomic(
    join(liveDir, RUNNING_STATE),
    `${JSON.stringify(state, null, 2)}\n`,
    0o600,
    {
      durable: state.phase !== 'starting',
    },
  );
}

/** Team and template ids must be DNS-label safe ids (they name directories). */
export function validIds(m: {
  sandbox_id: string;
  team_id: string;
  template_id: string;
}): string | undefined {
  if (!isValidId(m.sandbox_id)) return `bad sandbox_id ${JSON.stringify(m.sandbox_id)}`;
  if (!isValidId(m.team_id)) return `bad team_id ${JSON.stringify(m.team_id)}`;
  if (!isValidId(m.template_id)) return `bad template_id ${JSON.stringify(m.template_id)}`;
  return undefined;
}

/** Rename a dir aside as `<dir>.trash-<ns>` (a later sweep deletes it) and fsync the parent. */
export async function trashDir(sandboxesDir: string, name: string): Promise<string> {
  const id = name;
  const to = trashName(id);
  await rename(join(sandboxesDir, name), join(sandboxesDir, to));
  await fsyncPath(sandboxesDir);
  return to;
}

export async function listSandboxDirs(sandboxesDir: string): Promise<string[]> {
  const entries = await readdir(sandboxesDir, { withFileTypes: true }).catch(
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [];
      throw e;
    },
  );
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
