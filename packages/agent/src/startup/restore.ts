import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, layout } from '@wrenn/common';
import type { Manager } from '../manager.ts';
import { newSandbox } from '../sandbox.ts';
import {
  isStagingOrTrash,
  listSandboxDirs,
  type PauseMeta,
  readPauseMeta,
  specFromMeta,
  trashDir,
  VM_DIR,
  validIds,
} from '../store.ts';

export interface RestoreReport {
  restored: string[];
  /** Dirs renamed to `<dir>.trash-<ns>`, with the reason; a later sweep deletes them. */
  trashed: { dir: string; reason: string }[];
}

/**
 * Startup step 3: restore paused sandboxes from disk (the seed's rules).
 *
 * - every non-staging/non-trash dir not re-adopted: read its meta; unreadable meta
 *   (including a listed file missing or truncated), missing slot index, bad team/template
 *   id, a meta naming another sandbox → trash the dir;
 * - group by slot index; the newest `created_at` wins, older ones are trashed;
 * - reserve the winner's slot; if that fails, trash it;
 * - register it as `paused` holding only the slot: no VM, no base-image reference — so
 *   destroying it before a resume releases nothing it never acquired;
 * - one bad sandbox never fails startup: log, count, go on.
 */
export async function restorePaused(m: Manager): Promise<RestoreReport> {
  const sandboxes = layout(m.dir).sandboxes;
  const report: RestoreReport = { restored: [], trashed: [] };
  const trash = async (dir: string, reason: string) => {
    m.log.warn(
      { event: 'restore:trash', sandbox: dir, reason },
      `restore: trashing ${dir}: ${reason}`,
    );
    try {
      await trashDir(sandboxes, dir);
      report.trashed.push({ dir, reason });
    } catch (e) {
      // Leaving it in place is safe: restore skips it again next startup.
      m.log.warn(
        { event: 'restore:trash-failed', sandbox: dir, error: errorMessage(e) },
        'could not trash dir',
      );
    }
  };

  const candidates: { dir: string; meta: PauseMeta }[] = [];
  for (const dir of await listSandboxDirs(sandboxes)) {
    if (isStagingOrTrash(dir) || m.boxes.has(dir)) continue;
    let meta: PauseMeta;
    try {
      meta = await readPauseMeta(join(sandboxes, dir));
    } catch (e) {
      await trash(dir, `unreadable snapshot meta: ${errorMessage(e)}`);
      continue;
    }
    if (!meta.slot_index) {
      await trash(dir, 'snapshot meta has no slot_index');
      continue;
    }
    const bad = validIds(meta);
    if (bad) {
      await trash(dir, bad);
      continue;
    }
    if (meta.sandbox_id !== dir) {
      await trash(dir, `meta names sandbox ${meta.sandbox_id}`);
      continue;
    }
    candidates.push({ dir, meta });
  }

  const bySlot = new Map<number, { dir: string; meta: PauseMeta }[]>();
  for (const c of candidates) {
    const list = bySlot.get(c.meta.slot_index!) ?? [];
    list.push(c);
    bySlot.set(c.meta.slot_index!, list);
  }
  for (const [slot, cands] of bySlot) {
    cands.sort((a, b) => Date.parse(b.meta.created_at) - Date.parse(a.meta.created_at));
    const [winner, ...losers] = cands;
    for (const l of losers)
      await trash(l.dir, `older snapshot for slot ${slot} (winner ${winner!.dir})`);
    try {
      m.slots.reserve(slot);
    } catch (e) {
      await trash(winner!.dir, `slot ${slot} reservation failed: ${errorMessage(e)}`);
      continue;
    }
    const sb = newSandbox(specFromMeta(winner!.meta), slot, 'paused');
    sb.remainingMs = winner!.meta.remaining_ms;
    // INVARIANT: a restored sandbox owns only its slot — sb.vm and sb.baseImage stay unset.
    m.boxes.set(winner!.dir, sb);
    // A VM runtime dir left by an interrupted resume (its process was ended by the orphan sweep).
    await rm(join(sandboxes, winner!.dir, VM_DIR), { recursive: true, force: true }).catch(
      () => undefined,
    );
    report.restored.push(winner!.dir);
    m.log.info(
      { event: 'restore:restored', sandbox: winner!.dir, slot },
      'restored paused sandbox',
    );
  }
  if (report.restored.length || report.trashed.length) {
    m.log.info(
      { event: 'restore', restored: report.restored.length, trashed: report.trashed.length },
      'paused sandbox restore complete',
    );
  }
  return report;
}
