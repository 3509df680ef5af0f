import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { layout } from '@wrenn/common';
import { buildImage, listImages } from '@wrenn/images';
import { DEFAULT_RECIPES_DIR } from '@wrenn/images/recipes.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withVm } from '../../../../test/helpers/vm.ts';

const execFileP = promisify(execFile);
// The kernel .deb and its extraction are shared with the test WRENN_DIR: no re-download.
const cacheDir = layout(inject('wrennDir')).cache;

let work: string;
let dir: string;
let recipes: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'wrenn-images-cache-'));
  dir = join(work, 'wrenn');
  recipes = join(work, 'recipes');
  await cp(DEFAULT_RECIPES_DIR, recipes, { recursive: true });
});
afterAll(async () => {
  await execFileP('umount', [join(work, 'small')]).catch(() => {});
  await rm(work, { recursive: true, force: true });
});

const rootfsOf = async () => {
  const img = (await listImages(dir)).find((i) => i.name === 'minimal');
  const st = await stat(join(img!.dir, 'rootfs.ext4'));
  return {
    ino: st.ino,
    mtimeMs: st.mtimeMs,
    sha256: img!.manifest!.rootfs.sha256,
    inputsHash: img!.manifest!.inputsHash,
  };
};

describe('image cache', () => {
  it('a cold build of minimal produces a valid image', async () => {
    const r = await buildImage('minimal', { dir, cacheDir, recipesDir: recipes });
    expect(r.status).toBe('built');
    expect(r.reason).toBe('no valid manifest');
    expect((await listImages(dir)).map((i) => [i.name, i.valid])).toEqual([['minimal', true]]);
  });

  it('a second build with the same inputs is a no-op: the rootfs file is untouched', async () => {
    const before = await rootfsOf();
    const r = await buildImage('minimal', { dir, cacheDir, recipesDir: recipes });
    expect(r.status).toBe('cached');
    expect(await rootfsOf()).toEqual(before);
  });

  it('a changed init recipe rebuilds, and the new image runs the changed init', async () => {
    const before = await rootfsOf();
    const guestInit = join(recipes, 'guest', 'init');
    const text = await readFile(guestInit, 'utf8');
    await writeFile(
      guestInit,
      text.replace(
        'echo "wrenn-init: started"',
        'echo "wrenn-init: started"\necho "cache-test: changed recipe"',
      ),
    );
    const r = await buildImage('minimal', { dir, cacheDir, recipesDir: recipes });
    expect(r.status).toBe('built');
    expect(r.reason).toBe('inputs changed');
    const after = await rootfsOf();
    expect(after.inputsHash).not.toBe(before.inputsHash);
    expect(after.sha256).not.toBe(before.sha256);
    await withVm({ wrennDir: dir, image: 'minimal', noWait: true }, async (vm) => {
      await vm.waitForConsole(/cache-test: changed recipe/);
      await vm.waitReady();
    });
  });

  it('a failing build leaves the previous image valid and no build directory behind', async () => {
    const before = await rootfsOf();
    const broken = join(work, 'broken');
    await cp(recipes, broken, { recursive: true });
    await rm(join(broken, 'guest', 'init'));
    await expect(buildImage('minimal', { dir, cacheDir, recipesDir: broken })).rejects.toThrow(
      /init/,
    );
    expect(await rootfsOf()).toEqual(before);
    expect((await readdir(layout(dir).tmp)).filter((n) => n.startsWith('build-'))).toEqual([]);
  });

  it('a full disk is one clear resource_exhausted error and leaves no image', async () => {
    // A 64 MiB tmpfs cannot hold the node runtime (~100 MiB): the build must hit ENOSPC.
    const small = join(work, 'small');
    await mkdir(small);
    await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', small]);
    const err = await buildImage('minimal', { dir: small, cacheDir, recipesDir: recipes }).catch(
      (e) => e,
    );
    expect(err?.code).toBe('resource_exhausted');
    expect(err?.message).toMatch(/^disk full while writing under .*: free some space/);
    expect(await listImages(small)).toEqual([]);
    expect((await readdir(layout(small).tmp)).filter((n) => n.startsWith('build-'))).toEqual([]);
  });
});
