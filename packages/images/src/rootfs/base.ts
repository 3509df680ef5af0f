import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WrennError } from '@wrenn/common';
import { hostAptSources } from '../apt.ts';
import { requireTool, run, TOOLS } from '../exec.ts';
import type { Progress } from '../progress.ts';

/** Package names from a recipe list: one per line, `#` comments. */
export function parsePackageList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** The Debian suite this machine runs (its apt sources name it too). */
export async function hostSuite(): Promise<string> {
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const suite = osRelease.match(/^VERSION_CODENAME=(\S+)$/m)?.[1];
  if (!suite)
    throw new WrennError(
      'failed_precondition',
      'cannot tell the Debian suite from /etc/os-release',
    );
  return suite;
}

/**
 * The `base` userland: Debian minbase + the recipe's packages, from the machine's own apt
 * sources, into `root` (a directory). mmdebstrap needs root here: the image must carry
 * real owners (root, `user`) and device-free chroot hooks.
 */
export async function populateBase(opts: {
  root: string;
  packages: string[];
  customizeScript: string;
  progress: Progress;
  /** Where the userland tarball is kept, keyed by `userlandKey`. */
  cacheDir: string;
  /** Hash of what the userland depends on (packages, hook, apt sources, mmdebstrap). */
  userlandKey: string;
}): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new WrennError(
      'permission_denied',
      'building the base image needs root (mmdebstrap installs packages as root): run it with sudo',
    );
  }
  // The Debian userland changes far less often than envd or the init scripts: keep it as a
  // tarball so those rebuilds skip mmdebstrap (minutes on a busy 2-core box).
  const dir = join(opts.cacheDir, 'userland');
  const tarball = join(dir, `base-${opts.userlandKey}.tar`);
  if (!(await stat(tarball).catch(() => undefined))) {
    await mkdir(dir, { recursive: true });
    const partial = `${tarball}.tmp-${process.pid}`;
    try {
      await mmdebstrapInto(partial, opts);
      await rename(partial, tarball);
    } finally {
      await rm(partial, { force: true });
    }
    for (const old of await readdir(dir)) {
      if (old.startsWith('base-') && old.endsWith('.tar') && join(dir, old) !== tarball)
        await rm(join(dir, old), { force: true });
    }
  } else {
    opts.progress.note('cached Debian userland');
  }
  await mkdir(opts.root, { recursive: true });
  await run(TOOLS.tar, await requireTool(TOOLS.tar), [
    '-C',
    opts.root,
    '--numeric-owner',
    '-xpf',
    tarball,
  ]);
}

async function mmdebstrapInto(
  target: string,
  opts: { packages: string[]; customizeScript: string; progress: Progress },
): Promise<void> {
  const mmdebstrap = await requireTool(TOOLS.mmdebstrap);
  const args = [
    '--variant=minbase',
    '--mode=root',
    `--include=${opts.packages.join(',')}`,
    `--customize-hook=sh ${JSON.stringify(opts.customizeScript)} "$1"`,
    // A plain tarball: owners, modes and device nodes kept exactly, no tree on the host.
    '--format=tar',
    await hostSuite(),
    target,
    ...(await hostAptSources()),
  ];
  await run(TOOLS.mmdebstrap, mmdebstrap, args, {
    onStderrLine: (line) => {
      const phase = line.match(/^I: (.*)/)?.[1];
      if (phase) opts.progress.note(phase);
    },
  });
}
