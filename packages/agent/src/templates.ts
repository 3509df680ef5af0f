import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import {
  fsyncPath,
  isValidId,
  layout,
  pathExists,
  SYSTEM_TEAM,
  WrennError,
  writeFileAtomic,
} from '@wrenn/common';
import { readManifest } from '@wrenn/images';

/**
 * Templates on disk: `images/<team>/<template>/` holds `rootfs.ext4` (the read-only base
 * every overlay is backed by), `template.json` (written by the image builder) and, once
 * built, `snapshot/` — a VM snapshot with envd ready that clones start from.
 *
 * INVARIANT: `snapshot/` exists only complete (built in `snapshot.staging-<ns>/`, fsynced,
 * renamed into place); `snapshot/snapshot.json` is written last inside it.
 */
export const BASE_IMAGE = 'rootfs.ext4';
export const TEMPLATE_SNAPSHOT_DIR = 'snapshot';
export const TEMPLATE_SNAPSHOT_META = 'snapshot.json';

export interface Template {
  teamId: string;
  templateId: string;
  dir: string;
  baseImage: string;
  kernel: string;
  initrd: string;
  /** The image's kernel command line (from its manifest), if it names one. */
  cmdline?: string;
  /** Complete template snapshot dir, when one exists. */
  snapshotDir?: string;
  snapshotMeta?: TemplateSnapshotMeta;
}

export interface TemplateSnapshotMeta {
  version: 1;
  /**
   * `template`: RAM in a shared file, clones map it copy-on-write (VmSource 'template').
   * `full`: a pause-style snapshot of a sandbox, clones restore it (VmSource 'snapshot').
   */
  kind: 'template' | 'full';
  /**
   * The disk the snapshot's RAM belongs to, relative to the snapshot dir: clones' overlays
   * are backed by it (qcow2). Absent: clones are backed by the template's rootfs.ext4.
   */
  disk?: string;
  created_at: string;
  memory_mb: number;
  vcpus: number;
  /** The sandbox it was taken from, for templates made by CreateTemplateSnapshot. */
  source_sandbox?: string;
  /** envd's access token inside the snapshot (a clone's /init must present it). */
  envd_access_token?: string;
}

interface TemplateJson {
  kernel?: string;
  initrd?: string;
  initramfs?: string;
  cmdline?: string;
}

export async function resolveTemplate(
  dir: string,
  teamId: string,
  templateId: string,
): Promise<Template> {
  if (!isValidId(teamId))
    throw new WrennError('invalid_argument', `bad team id ${JSON.stringify(teamId)}`);
  if (!isValidId(templateId))
    throw new WrennError('invalid_argument', `bad template id ${JSON.stringify(templateId)}`);
  const tdir = layout(dir).image(teamId, templateId);
  const baseImage = join(tdir, BASE_IMAGE);
  if (!(await pathExists(baseImage))) {
    throw new WrennError(
      'not_found',
      `template ${teamId}/${templateId} not found (no ${baseImage})`,
    );
  }
  const tj = (await readFile(join(tdir, 'template.json'), 'utf8')
    .then((t) => JSON.parse(t) as TemplateJson)
    .catch(() => ({}))) as TemplateJson;
  // The image builder's manifest names the kernel, initramfs and command line it was built for.
  const manifest = await readManifest(tdir).catch(() => undefined);
  const { kernel, initrd } = manifest
    ? {
        kernel: join(dir, manifest.kernel.vmlinuz.path),
        initrd: join(dir, manifest.kernel.initramfs.path),
      }
    : await resolveKernel(dir, tj);
  const snapshotDir = join(tdir, TEMPLATE_SNAPSHOT_DIR);
  const snapshotMeta = await readFile(join(snapshotDir, TEMPLATE_SNAPSHOT_META), 'utf8')
    .then((t) => JSON.parse(t) as TemplateSnapshotMeta)
    .catch(() => undefined);
  return {
    teamId,
    templateId,
    dir: tdir,
    baseImage,
    kernel,
    initrd,
    ...(manifest?.kernel.cmdline
      ? { cmdline: manifest.kernel.cmdline }
      : tj.cmdline
        ? { cmdline: tj.cmdline }
        : {}),
    ...(snapshotMeta ? { snapshotDir, snapshotMeta } : {}),
  };
}

/**
 * The kernel and initramfs a template boots with: named by its template.json when it says
 * (absolute, or relative to `kernels/`), else the newest `vmlinuz-<v>` with its
 * `initramfs-<v>` under `kernels/`.
 */
async function resolveKernel(
  dir: string,
  tj: TemplateJson,
): Promise<{ kernel: string; initrd: string }> {
  const kdir = layout(dir).kernels;
  const abs = (p: string) => (isAbsolute(p) ? p : join(kdir, p));
  const named = tj.initrd ?? tj.initramfs;
  if (tj.kernel && named) return { kernel: abs(tj.kernel), initrd: abs(named) };
  const names = await readdir(kdir).catch(() => [] as string[]);
  const versions: { v: string; mtime: number }[] = [];
  for (const n of names) {
    if (!n.startsWith('vmlinuz-')) continue;
    const v = n.slice('vmlinuz-'.length);
    if (!names.includes(`initramfs-${v}`)) continue;
    versions.push({ v, mtime: (await stat(join(kdir, n))).mtimeMs });
  }
  versions.sort((a, b) => b.mtime - a.mtime);
  const v = versions[0]?.v;
  if (!v)
    throw new WrennError(
      'failed_precondition',
      `no kernel in ${kdir}: build images first (wrenn images build minimal)`,
    );
  return { kernel: join(kdir, `vmlinuz-${v}`), initrd: join(kdir, `initramfs-${v}`) };
}

/**
 * The template a sandbox of `teamId` means by `templateId`: the team's own, else the
 * built-in one of team `public` (SYSTEM_TEAM).
 */
export async function resolveTemplateFor(
  dir: string,
  teamId: string,
  templateId: string,
): Promise<Template> {
  try {
    return await resolveTemplate(dir, teamId, templateId);
  } catch (e) {
    if (teamId === SYSTEM_TEAM || !(e instanceof WrennError) || e.code !== 'not_found') throw e;
    return resolveTemplate(dir, SYSTEM_TEAM, templateId).catch((e2) => {
      if (e2 instanceof WrennError && e2.code === 'not_found') {
        throw new WrennError('not_found', `template ${templateId} not found for team ${teamId}`);
      }
      throw e2;
    });
  }
}

export async function listTemplates(dir: string): Promise<Template[]> {
  const out: Template[] = [];
  for (const team of await readdir(layout(dir).images).catch(() => [] as string[])) {
    if (!isValidId(team)) continue;
    for (const tpl of await readdir(join(layout(dir).images, team)).catch(() => [] as string[])) {
      if (!isValidId(tpl)) continue;
      const t = await resolveTemplate(dir, team, tpl).catch(() => undefined);
      if (t) out.push(t);
    }
  }
  return out;
}

/** Write a template snapshot's meta last, fsync everything, and rename the dir into place. */
export async function promoteTemplateSnapshot(
  stagingDir: string,
  finalDir: string,
  meta: TemplateSnapshotMeta,
) {
  for (const f of await readdir(stagingDir)) await fsyncPath(join(stagingDir, f));
  await writeFileAtomic(
    join(stagingDir, TEMPLATE_SNAPSHOT_META),
    `${JSON.stringify(meta, null, 2)}\n`,
  );
  await fsyncPath(stagingDir);
  await rm(finalDir, { recursive: true, force: true });
  await rename(stagingDir, finalDir);
  await fsyncPath(join(finalDir, '..'));
}

export async function dirBytes(path: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(path, { withFileTypes: true }).catch(() => [])) {
    const p = join(path, e.name);
    if (e.isDirectory()) total += await dirBytes(p);
    else total += (await stat(p).catch(() => ({ blocks: 0 }))).blocks * 512;
  }
  return total;
}
