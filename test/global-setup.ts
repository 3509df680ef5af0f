import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '@wrenn/common';
import { buildImage, quietProgress, terminalProgress } from '@wrenn/images';
import type { TestProject } from 'vitest/node';

/**
 * globalSetup of the `vm` project: build `minimal` and `base` once into a cached test
 * WRENN_DIR and hand its path to every test (`inject('wrennDir')`). Unchanged inputs make
 * this a few seconds; changed ones (envd, an init script, the package list) rebuild.
 * Builds take a lock, so parallel test runs on one machine share the directory safely.
 */
export const TEST_IMAGES = ['minimal', 'base'] as const;

export function testWrennDir(): string {
  return resolve(
    process.env.WRENN_TEST_DIR ??
      resolve(dirname(fileURLToPath(import.meta.url)), '..', '.cache', 'test-wrenn'),
  );
}

export default async function setup(project: TestProject): Promise<void> {
  const dir = testWrennDir();
  const progress = process.env.CI ? quietProgress : terminalProgress(process.stderr);
  for (const name of TEST_IMAGES) {
    const started = Date.now();
    try {
      const r = await buildImage(name, { dir, progress });
      process.stderr.write(
        `global-setup: image ${name} ${r.status} in ${((Date.now() - started) / 1000).toFixed(1)} s (${dir})\n`,
      );
    } catch (e) {
      // Fail loudly: every VM test needs these images.
      throw new Error(`global-setup: cannot build image ${name} into ${dir}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
  }
  project.provide('wrennDir', dir);
}
