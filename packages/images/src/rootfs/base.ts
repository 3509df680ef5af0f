import { readFile } from 'node:fs/promises';
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
}): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new WrennError(
      'permission_denied',
      'building the base image needs root (mmdebstrap installs packages as root): run it with sudo',
    );
  }
  const mmdebstrap = await requireTool(TOOLS.mmdebstrap);
  const args = [
    '--variant=minbase',
    '--mode=root',
    `--include=${opts.packages.join(',')}`,
    `--customize-hook=sh ${JSON.stringify(opts.customizeScript)} "$1"`,
    await hostSuite(),
    opts.root,
    ...(await hostAptSources()),
  ];
  await run(TOOLS.mmdebstrap, mmdebstrap, args, {
    onStderrLine: (line) => {
      const phase = line.match(/^I: (.*)/)?.[1];
      if (phase) opts.progress.note(phase);
    },
  });
}
