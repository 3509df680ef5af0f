import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, fsyncPath, type Logger, layout, pathExists } from '@wrenn/common';
import { isStagingOrTrash, listSandboxDirs, readPauseMeta, removeDir } from '../store.ts';

export interface SweepReport {
  removed: string[];
  /** Staging dirs promoted because the pause had already trashed the live dir. */
  promoted: string[];
}

/**
 * Startup step 1: sweep what a crash left between states.
 *
 * `.trash-*` dirs are deleted. `.staging-*` dirs are deleted — except one case DESIGN.md's
 * "never trusted" does not cover: a pause that died between `trash-live` and
 * `promote-staging` left no live dir, and its staging dir is the only copy of the paused
 * sandbox. A staging dir is promoted when its live dir is missing and its meta (written
 * last, after every file was fsynced) checks out — sizes included; otherwise deleted.
 */
export async function sweepStagingAndTrash(dir: string, log: Logger): Promise<SweepReport> {
  const sandboxes = layout(dir).sandboxes;
  const names = await listSandboxDirs(sandboxes);
  const report: SweepReport = { removed: [], promoted: [] };

  const staging = names
    .filter((n) => n.includes('.staging-'))
    .sort((a, b) => (nsOf(b) > nsOf(a) ? 1 : nsOf(b) < nsOf(a) ? -1 : 0)); // newest first
  for (const name of staging) {
    const id = name.slice(0, name.indexOf('.staging-'));
    const live = join(sandboxes, id);
    try {
      const liveExists = await pathExists(live);
      if (!liveExists) {
        const meta = await readPauseMeta(join(sandboxes, name)).catch(() => undefined);
        if (meta && meta.sandbox_id === id) {
          await rename(join(sandboxes, name), live);
          await fsyncPath(sandboxes);
          report.promoted.push(name);
          log.warn(
            { event: 'sweep:promote-staging', dir: name },
            'promoted a complete staging dir of an interrupted pause',
          );
          continue;
        }
      }
      await removeDir(join(sandboxes, name));
      report.removed.push(name);
    } catch (e) {
      log.warn({ event: 'sweep-failed', dir: name, error: errorMessage(e) }, 'could not sweep dir');
    }
  }
  for (const name of names.filter((n) => n.includes('.trash-'))) {
    try {
      await removeDir(join(sandboxes, name));
      report.removed.push(name);
    } catch (e) {
      log.warn({ event: 'sweep-failed', dir: name, error: errorMessage(e) }, 'could not sweep dir');
    }
  }
  // Template work a crash interrupted: `images/<team>/<tpl>.staging-*` (CreateTemplateSnapshot),
  // `images/<team>/<tpl>/snapshot.staging-*` (a template snapshot build), `*.trash-*`.
  const images = layout(dir).images;
  for (const team of await listSandboxDirs(images)) {
    for (const tpl of await listSandboxDirs(join(images, team))) {
      const p = join(images, team, tpl);
      if (isStagingOrTrash(tpl)) {
        await removeDir(p).catch(() => undefined);
        report.removed.push(join('images', team, tpl));
        continue;
      }
      for (const sub of await listSandboxDirs(p)) {
        if (!isStagingOrTrash(sub)) continue;
        await removeDir(join(p, sub)).catch(() => undefined);
        report.removed.push(join('images', team, tpl, sub));
      }
    }
  }
  if (report.removed.length || report.promoted.length) {
    log.info(
      { event: 'sweep', removed: report.removed.length, promoted: report.promoted.length },
      'swept staging and trash dirs',
    );
  }
  return report;
}

function nsOf(name: string): bigint {
  const m = /\.(?:staging|trash)-(\d+)$/.exec(name);
  return m ? BigInt(m[1]!) : 0n;
}
