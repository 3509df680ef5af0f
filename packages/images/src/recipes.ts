import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The recipe files (shell scripts, package lists) under `<repo>/images/`. Builders take
 * the directory as an option so a test can change a recipe without touching the repo.
 */
export const DEFAULT_RECIPES_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../images',
);

export const recipeFiles = (dir: string) => ({
  initramfsInit: join(dir, 'initramfs', 'init'),
  guestInit: join(dir, 'guest', 'init'),
  basePackages: join(dir, 'base', 'packages.txt'),
  baseCustomize: join(dir, 'base', 'customize.sh'),
});

export type RecipeFiles = ReturnType<typeof recipeFiles>;
