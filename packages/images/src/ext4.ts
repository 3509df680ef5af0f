import { lstat, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run, TOOLS } from './exec.ts';

/** Free space left in every rootfs for what sandboxes write (the file is sparse). */
export const ROOTFS_HEADROOM_BYTES = 1 << 30;

/** Bytes a tree occupies, counted in 4 KiB blocks plus one inode-ish block per entry. */
export async function treeBytes(root: string): Promise<number> {
  let total = 0;
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const st = await lstat(join(d, e.name));
      total += Math.ceil(st.size / 4096) * 4096 + 4096;
      if (e.isDirectory()) await walk(join(d, e.name));
    }
  };
  await walk(root);
  return total;
}

/**
 * Make an ext4 image of a directory with `mkfs.ext4 -d`: no root and no loop mounts.
 * Owners are copied from the tree; `owners` forces uid/gid on paths afterwards (debugfs),
 * for builds that ran without root and could not chown.
 */
export async function makeExt4(opts: {
  tree: string;
  out: string;
  label: string;
  owners?: { path: string; uid: number; gid: number }[];
}): Promise<number> {
  const size = (await treeBytes(opts.tree)) + ROOTFS_HEADROOM_BYTES;
  const sizeMiB = Math.ceil(size / (1 << 20));
  const mkfs = await requireTool(TOOLS.mkfsExt4);
  await run(TOOLS.mkfsExt4, mkfs, [
    '-q',
    '-F',
    '-L',
    opts.label,
    '-d',
    opts.tree,
    // Lazy init keeps the image file sparse: only written blocks take disk space.
    '-E',
    'lazy_itable_init=1,lazy_journal_init=1',
    opts.out,
    `${sizeMiB}M`,
  ]);
  if (opts.owners?.length) await setOwners(opts.out, opts.owners);
  return sizeMiB * (1 << 20);
}

async function setOwners(image: string, owners: { path: string; uid: number; gid: number }[]) {
  const script = owners
    .flatMap((o) => [`sif "${o.path}" uid ${o.uid}`, `sif "${o.path}" gid ${o.gid}`])
    .join('\n');
  const cmdFile = `${image}.debugfs`;
  await writeFile(cmdFile, `${script}\n`);
  const debugfs = await requireTool({ command: 'debugfs', debian: 'e2fsprogs' });
  await run({ command: 'debugfs', debian: 'e2fsprogs' }, debugfs, ['-w', '-f', cmdFile, image]);
  await rm(cmdFile, { force: true });
}
