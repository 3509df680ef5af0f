import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { layout } from '@wrenn/common';
import { inject } from 'vitest';
import { killVmsUnder } from './agent-process.ts';

/**
 * The WRENN_DIR with built images that test/global-setup.ts provides to the `vm` project.
 * Missing → the test fails loudly (never skips).
 */
export function imagesDir(): string {
  const d = (inject as (k: string) => unknown)('wrennDir') as string | undefined;
  if (!d)
    throw new Error(
      "no built images: the vm project's global setup must provide inject('wrennDir')",
    );
  return d;
}

/**
 * A fresh WRENN_DIR for one test: its own `sandboxes/`, sharing `images/`, `kernels/` and
 * `cache/` (the accelerator verdict) with the built one — so the template snapshot is built
 * once and every test clones it. Short path: QMP sockets live under it.
 */
export async function freshWrennDir(shared = imagesDir(), parent = '/tmp'): Promise<string> {
  const dir = await mkdtemp(join(parent, 'wat-'));
  for (const name of ['kernels', 'cache']) {
    await mkdir(join(shared, name), { recursive: true });
    await symlink(join(shared, name), join(dir, name));
  }
  // images/ is this test's own, with the built teams linked in: templates a test makes
  // (and its startup sweeps) stay in its dir.
  await mkdir(join(dir, 'images'));
  for (const team of await readdir(join(shared, 'images'))) {
    await symlink(join(shared, 'images', team), join(dir, 'images', team));
  }
  await mkdir(layout(dir).sandboxes, { recursive: true });
  return dir;
}

export async function disposeWrennDir(dir: string): Promise<void> {
  await killVmsUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

/** sha256 of every file in a sandbox dir (name → hash): a paused snapshot must not change. */
export async function dirDigest(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(path)).sort()) {
    const p = join(path, name);
    if ((await stat(p)).isDirectory()) continue;
    out[name] = createHash('sha256')
      .update(await readFile(p))
      .digest('hex');
  }
  return out;
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Poll `fn` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
